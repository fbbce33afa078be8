"""The process survives the ends of an Engine's life: errors on shared rounds, an Engine dropped on
another thread or on its own loop thread, and interpreter exit without close().

Each scenario runs in a child process, since the failures these guard against abort the process
(exit 134) rather than raise.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import textwrap
from concurrent.futures import ThreadPoolExecutor

import pytest


def run_child(code: str, *args: str, timeout: float = 120) -> dict:
    """Runs `code` in a fresh interpreter (outside the source tree, so that it imports the
    installed stars_cpp); returns the JSON object it prints last."""
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code), *map(str, args)],
                          capture_output=True, text=True, timeout=timeout,
                          cwd=tempfile.gettempdir())
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stderr[-3000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


# Two threads whose requests share rounds. `reward` fails every call that mixes both prompts, and
# (with `fail_alone`) every call of prompt B even alone.
SHARED_ROUND = """
import json, sys, threading, time
import stars_cpp

fail_alone = sys.argv[2] == "1"
joint_calls = []

def reward(prompts, responses):
    # Slow rounds (12 of them, 0.36 s at least), so that the second request joins the first's
    # even when a loaded machine starts its thread late (at 10 ms a round, one run in about
    # 40 under load had finished A before B arrived).
    time.sleep(0.03)
    if len(set(prompts)) > 1:
        joint_calls.append(len(prompts))
        raise ValueError("one prompt per call")
    # B is refused once it has shared a round: refused from its first call, it could fail
    # alone before A's thread even came.
    if fail_alone and prompts[0] == "B" and joint_calls:
        raise ValueError("B is refused")
    return [float(len(r) % 7) for r in responses]

# Room for both requests from the start: neither waits for the other to finish.
engine = stars_cpp.Engine(sys.argv[1], reward, n_ctx=4096, n_seq_max=16)
outcomes = {}
barrier = threading.Barrier(2)

def run(prompt):
    barrier.wait()
    try:
        result = engine.generate(prompt, segment_tokens=4, max_tokens=48, seed=5)
        outcomes[prompt] = ("ok", len(result.tokens))
    except ValueError as error:
        outcomes[prompt] = ("error", str(error), id(error))

threads = [threading.Thread(target=run, args=(p,)) for p in ("A", "B")]
for t in threads: t.start()
for t in threads: t.join()
after = len(engine.generate("C", segment_tokens=4, max_tokens=8, seed=5).tokens)
print(json.dumps({"outcomes": outcomes, "joint_calls": len(joint_calls), "after": after}))
"""


def test_a_reward_failing_only_on_the_shared_round_fails_nobody(tiny_llama):
    report = run_child(SHARED_ROUND, tiny_llama, "0")
    assert report["joint_calls"] > 0  # the two requests did share rounds
    assert report["outcomes"] == {"A": ["ok", 48], "B": ["ok", 48]}
    assert report["after"] == 8


def test_a_reward_failing_one_request_fails_it_alone_with_its_own_error(tiny_llama):
    report = run_child(SHARED_ROUND, tiny_llama, "1")
    assert report["joint_calls"] > 0
    assert report["outcomes"]["A"] == ["ok", 48]
    assert report["outcomes"]["B"][:2] == ["error", "B is refused"]
    assert report["after"] == 8


def test_every_caller_of_a_failing_round_gets_its_own_exception(tiny_llama):
    # Both requests fail on every call; neither error may be the other's object, and raising
    # them on two threads at once must not abort.
    code = """
    import json, sys, threading
    import stars_cpp

    def reward(prompts, responses):
        raise KeyError("no reward today")

    engine = stars_cpp.Engine(sys.argv[1], reward, n_ctx=4096, n_seq_max=32)
    errors = {}
    barrier = threading.Barrier(4)

    def run(i):
        barrier.wait()
        try:
            engine.generate(f"prompt {i}", segment_tokens=4, max_tokens=16, seed=i)
        except KeyError as error:
            errors[i] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads: t.start()
    for t in threads: t.join()
    print(json.dumps({"n": len(errors), "distinct": len({id(e) for e in errors.values()}),
                      "messages": sorted({str(e) for e in errors.values()})}))
    """
    report = run_child(code, tiny_llama)
    assert report == {"n": 4, "distinct": 4, "messages": ["'no reward today'"]}


def test_a_closed_engine_dropped_on_a_newer_thread(tiny_llama):
    # Close() used to compare the caller with the joined loop thread's id, which a thread started
    # later can reuse: the destructor then threw, and the process aborted.
    code = """
    import json, sys, threading
    import stars_cpp

    dropped = 0
    for _ in range(5):
        with stars_cpp.Engine(sys.argv[1], n_ctx=512) as engine:
            engine.generate("x", mode="plain", max_tokens=4, seed=1)
        holder = [engine]
        del engine
        thread = threading.Thread(target=holder.clear)
        thread.start()
        thread.join()
        dropped += 1
    print(json.dumps({"dropped": dropped}))
    """
    assert run_child(code, tiny_llama) == {"dropped": 5}


def test_an_engine_dropped_on_its_own_loop_thread(tiny_llama):
    # The reward drops the last reference to its Engine (as a garbage collection inside a reward
    # can): the loop cannot join itself, so it ends on its own and its request fails, closed.
    code = """
    import json, sys, threading
    import stars_cpp

    holder = []
    done = threading.Event()
    outcome = {}

    def reward(prompts, responses):
        holder.clear()
        return [0.0] * len(prompts)

    def on_error(error):
        outcome["error"] = type(error).__name__
        done.set()

    def on_result(result):
        outcome["result"] = result.finish_reason
        done.set()

    holder.append(stars_cpp.Engine(sys.argv[1], reward, n_ctx=1024))
    holder[0].submit("x", on_result=on_result, on_error=on_error, segment_tokens=4,
                     max_tokens=64, seed=1)
    assert done.wait(60)
    print(json.dumps(outcome))
    """
    assert run_child(code, tiny_llama) == {"error": "EngineClosedError"}


EXIT_WITHOUT_CLOSE = """
import sys
import stars_cpp

engine = stars_cpp.Engine(sys.argv[1], n_ctx=1024)
for i in range(12):
    for segment in engine.stream(f"request {i}", mode="plain", max_tokens=3, seed=i):
        pass
print("{}")
"""


@pytest.mark.slow
def test_a_script_that_ends_without_close_exits_cleanly(tiny_llama):
    # The loop thread used to free a finished request's callbacks under the GIL while the
    # interpreter finalized, and Python ended that thread mid-destructor: exit 134 in about 6
    # runs of 20. Twelve runs, two at a time.
    with ThreadPoolExecutor(2) as pool:
        reports = list(pool.map(lambda _: run_child(EXIT_WITHOUT_CLOSE, tiny_llama), range(12)))
    assert reports == [{}] * 12


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["plain", "stars"])
def test_a_script_that_ends_mid_generation_exits_cleanly(tiny_llama, mode):
    # A request still running at exit: the engine is closed before finalization, the request
    # fails on its (daemon) thread, and the interpreter exits 0.
    code = f"""
    import sys, threading, time
    import stars_cpp

    engine = stars_cpp.Engine(sys.argv[1], lambda p, r: [0.0] * len(p), n_ctx=70000)
    started = threading.Event()
    threading.Thread(target=lambda: engine.generate(
        "x", mode="{mode}", max_tokens=60000, seed=1,
        on_segment=lambda i, s: started.set()), daemon=True).start()
    started.wait(60)
    print("{{}}")
    """
    assert run_child(code, tiny_llama) == {}
