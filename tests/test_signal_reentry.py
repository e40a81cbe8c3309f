"""A second SIGTERM that lands while the first one's handler runs (`timeout -s TERM` and a CI runner's cancel send one
to the process and one to its process group, a moment apart) must not hang the command."""

import subprocess
import sys
import textwrap

# Sends a second SIGTERM at each line, in turn, that the first handler (lifecycle.terminate) and what it calls run:
# with threading.Event as the flag, the one sent while set() held the Event's lock blocked the handler on it forever.
SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    from mlhw import lifecycle

    signal.signal(signal.SIGTERM, lifecycle.terminate)
    state = {}

    def local(frame, event, arg):
        if event == "line" and state["depth"] == 1 and not state["sent"]:
            if state["n"] == state["k"]:
                state["sent"] = True
                os.kill(os.getpid(), signal.SIGTERM)
            state["n"] += 1
        if event == "return" and frame.f_code is lifecycle.terminate.__code__:
            state["depth"] -= 1
        return local

    def tracer(frame, event, arg):
        if frame.f_code is lifecycle.terminate.__code__:
            state["depth"] += 1
        return local if state["depth"] else None

    def spin():
        try:
            for _ in range(10000):
                pass
        except lifecycle.Terminated:
            pass

    for k in range(200):
        state.update(depth=0, k=k, n=0, sent=False)
        sys.settrace(tracer)
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            spin()
        except lifecycle.Terminated:
            spin()
        sys.settrace(None)
        spin()
        if not state["sent"]:
            break
    assert lifecycle._TERMINATED.is_set()
    print("lines", k)
    """
)


def test_a_second_sigterm_inside_the_first_handler_does_not_hang():
    try:  # a hung handler ignores SIGTERM: subprocess.run's timeout kills it with SIGKILL
        out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        raise AssertionError("a second SIGTERM inside lifecycle.terminate hung the process") from None
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("lines ")
