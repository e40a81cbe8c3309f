from mlhw.cli import main

main()
