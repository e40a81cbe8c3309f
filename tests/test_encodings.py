"""mlhw under locales whose encoding is not UTF-8 (LC_ALL=C with PYTHONUTF8=0, PYTHONIOENCODING=ascii or latin-1):
its output says ± · ≥ in ASCII where the stream cannot encode them, and the files it writes are UTF-8 whatever the
locale."""

import codecs
import os
import subprocess
import sys

import pytest

ASCII_LOCALE = {"LC_ALL": "C", "PYTHONUTF8": "0"}  # Python's C locale without its UTF-8 mode: ascii streams


def mlhw(*argv, cwd, **env) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k not in ("PYTHONIOENCODING", "PYTHONUTF8", "LANG", "LC_ALL")}
    return subprocess.run(
        [sys.executable, "-m", "mlhw", *map(str, argv)], cwd=cwd, env={**environ, **env}, capture_output=True
    )


@pytest.mark.parametrize(
    "env, std",
    [
        (ASCII_LOCALE, b"+/- std"),
        ({"PYTHONIOENCODING": "ascii"}, b"+/- std"),
        ({"PYTHONIOENCODING": "latin-1"}, b"\xb1 std"),
    ],
    ids=["LC_ALL=C PYTHONUTF8=0", "PYTHONIOENCODING=ascii", "PYTHONIOENCODING=latin-1"],
)
def test_help_in_a_locale_without_plus_minus_says_it_in_ascii(workdir, env, std):
    """`mlhw tables --help` (its 'mean ± std') ended in a UnicodeEncodeError traceback, exit 1."""
    res = mlhw("tables", "--help", cwd=workdir, **env)
    assert res.returncode == 0 and b"Traceback" not in res.stderr, res.stderr.decode(errors="replace")
    assert std in res.stdout


@pytest.mark.parametrize("encoding, utf", [("ascii", False), ("latin-1", False), ("utf-8", True)])
def test_both_streams_get_the_plain_handler_where_they_cannot_encode_everything(monkeypatch, encoding, utf):
    """stderr carries the run names (`SGD lr=0.005 · cnn_optimizers`) and the progress: under
    PYTHONIOENCODING=ascii they read `\\xb7` when only stdout was given the handler. A UTF-8 stream is left as it is."""
    import io

    from mlhw.cli.common import plain_where_unencodable

    streams = {}
    for name in ("stdout", "stderr"):
        streams[name] = io.TextIOWrapper(io.BytesIO(), encoding=encoding, errors="strict")
        monkeypatch.setattr(sys, name, streams[name])
    plain_where_unencodable()
    for name, stream in streams.items():
        assert stream.errors == ("strict" if utf else "mlhw.plain"), name
        stream.write("lr=0.005 · ≥ 3")
        stream.flush()
        assert stream.buffer.getvalue() == "lr=0.005 · ≥ 3".encode(encoding, "strict" if utf else "mlhw.plain")
        assert utf or b"lr=0.005 " in stream.buffer.getvalue() and b">= 3" in stream.buffer.getvalue()


def test_the_plain_handler_writes_a_names_undecodable_bytes_back_as_they_were():
    """Under the C locale a non-UTF-8 file name reaches Python as surrogates; stdout's own handler (surrogateescape)
    wrote them back as their bytes, and so does mlhw's beside its ASCII for ±."""
    from mlhw.cli.common import plain_where_unencodable

    plain_where_unencodable()  # registers the handler
    text = b"r\xfcn \xb1".decode("ascii", "surrogateescape") + " ± ≥ → x"
    assert text.encode("ascii", "mlhw.plain") == b"r\xfcn \xb1 +/- >= -> x"
    assert "\u2603".encode("latin-1", "mlhw.plain") == b"\\u2603"  # a character it has no word for: escaped
    # what the encoding has stays itself, the rest of the same text through the handler
    assert codecs.encode("± ≥ ·", "latin-1", "mlhw.plain") == b"\xb1 >= \xb7"


def test_the_plain_handler_writes_every_undecodable_byte_back_even_beside_a_plus_minus():
    """The bytes a name may hold run from 0x80 to 0xff (U+DC80..U+DCFF under surrogateescape): each is written back
    as itself, the first and last too, and so is one directly followed by a character the stream lacks (the
    encoder hands both to the handler as one stretch: the byte read as the text `\\udce9`)."""
    from mlhw.cli.common import plain_where_unencodable

    plain_where_unencodable()
    every = bytes(range(0x80, 0x100))
    assert every.decode("ascii", "surrogateescape").encode("ascii", "mlhw.plain") == every
    name = b"caf\xe9".decode("ascii", "surrogateescape")
    assert (name + "· x").encode("ascii", "mlhw.plain") == b"caf\xe9- x"
    assert (name + "±" + name).encode("ascii", "mlhw.plain") == b"caf\xe9+/-caf\xe9"


def test_the_report_is_utf8_whatever_the_locale(ci_copy, workdir):
    """results/<profile>/ is committed and read elsewhere: its files were written in the locale's encoding, so under
    LC_ALL=C (PYTHONUTF8=0) `mlhw tables` (and a reproduction, once its runs were done) ended in a UnicodeEncodeError
    traceback at the first 'mean ± std', exit 1; under latin-1 the same text would have been other bytes."""
    res = mlhw("tables", "--profile", "ci", "--tracking-uri", ci_copy, cwd=workdir, **ASCII_LOCALE)
    assert res.returncode == 0 and b"Traceback" not in res.stderr, res.stderr.decode(errors="replace")
    assert b"+/-" in res.stdout  # its tables on the screen, in ASCII
    for path in [workdir / "results/ci/REPORT.md", *sorted((workdir / "results/ci/tables").glob("*.md"))]:
        path.read_bytes().decode("utf-8")  # strict: every file UTF-8
    assert "±" in (workdir / "results/ci/REPORT.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("where", ["folder", "experiment"])
def test_a_name_that_is_not_text_in_the_locale_is_refused_naming_it_and_the_way_out(workdir, where):
    """A project cloned into `ünï/` and run under LC_ALL=C with PYTHONUTF8=0: Python holds the name's bytes as
    surrogates, which MLflow cannot encode; the store was refused as `--tracking-uri sqlite:///mlflow.db:
    UnicodeEncodeError: 'utf-8' codec can't encode characters in position 27-28: surrogates not allowed` (and an
    `--experiment ünï` the same way, blaming the store). One line names the name and the way out; nothing is made."""
    folder = workdir / ("ünï" if where == "folder" else "plain")
    folder.mkdir()
    experiment = ["--experiment", "ünï"] if where == "experiment" else []
    res = mlhw("svm", "soft", *experiment, cwd=folder, **ASCII_LOCALE)
    err = res.stderr.decode("utf-8", "replace")
    assert res.returncode == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert "is not text in this locale's encoding" in err and "PYTHONUTF8=1" in err, err
    assert err.startswith("error: --experiment: ") if experiment else "ünï/mlflow.db is not text" in err, err
    assert list(folder.iterdir()) == []
