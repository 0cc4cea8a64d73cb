"""bench run's own output (bench/report/console.py): benchmarks, not tests; a progress bar on a terminal."""

import io

from rich.console import Console

from bench.report.console import ConsoleReporter, outcome_lines


def row(case_id, backend, status="ok", reason="", unstable=""):
    return {"case_id": case_id, "backend": backend, "status": status, "reason": reason, "unstable": unstable}


def test_outcomes_say_timed_untimed_and_why():
    rows = [row("a", "numpy"), row("b", "numpy", unstable="processes disagree"),
            row("a", "torch_cuda", "unavailable", "CUDA not available"),
            row("b", "torch_cuda", "unavailable", "CUDA not available"),
            row("a", "numba", "mismatch", "max abs error 0.5 vs float64 reference beyond rtol=1e-05"),
            row("b", "numba", "over_budget", "one call takes ~40 s; 3 rounds exceed the budget of 30 s"),
            row("c", "numba", "error", "ZeroDivisionError: x")]
    assert outcome_lines(rows) == [
        "7 benchmarks: 2 timed, 3 not timed, 1 mismatches (wrong results, not timed), 1 errors",
        "not timed: torch_cuda, 2 (a, b): unavailable: CUDA not available",
        "not timed: numba, 1 (b): over budget: one call takes ~40 s; 3 rounds exceed the budget of 30 s",
        "mismatch: a on numba: max abs error 0.5 vs float64 reference beyond rtol=1e-05",
        "error: c on numba: ZeroDivisionError: x",
        "unstable: 1 timed rows (marked ~ in the table; their 'unstable' column says why)",
    ]
    every = [row("a", "numpy"), row("a", "torch_cuda", "unavailable", "no GPU")]
    assert outcome_lines(every)[1] == "not timed: torch_cuda, 1 (every case): unavailable: no GPU"


def track(terminal: bool) -> str:
    out = io.StringIO()
    voice = ConsoleReporter(Console(file=out, force_terminal=terminal, width=120, highlight=False))
    with voice.track() as (line, step):
        step(0, 4)
        line("[1/4] lstm-T1-B1-H16-float32: numpy 3 us/step")
        step(2, 4)
    return out.getvalue()


def test_progress_bar_on_a_terminal_with_the_time_left():
    text = track(terminal=True)
    assert "[1/4] lstm-T1-B1-H16-float32: numpy 3 us/step" in text
    assert "2/4" in text and "left" in text and "cases" in text


def test_off_a_terminal_only_the_lines():
    assert track(terminal=False) == "[1/4] lstm-T1-B1-H16-float32: numpy 3 us/step\n"


def test_the_table_marks_unstable_cells_and_says_why_under_it():
    from bench.report.table import render

    rows = [row("a", "numpy"), row("a", "numba", unstable="machine busy during 2 of 3 processes (other processes "
                                                           "used up to 0.97 cores)"),
            row("a", "torch_cuda", "unavailable", "no GPU")]
    for r, value in zip(rows, (2e-6, 1e-6, "")):
        r["per_step_s"] = value
    out = io.StringIO()
    render(rows, file=out)
    text = out.getvalue()
    assert "1*~" in text and "torch_cuda" not in text  # best and unstable; no column for what could not run
    assert "~ 1 cells, machine busy (e.g. a numba: machine busy during 2 of 3 processes" in text


def test_who_wins_per_pass_over_the_cases_all_timed():
    from bench.report.wins import wins_lines

    rows = []
    for case, times in (("a", {"numpy": 4.0, "numba": 1.0, "jax": 2.0}), ("b", {"numpy": 3.0, "numba": 3.0 * 1.5,
                                                                            "jax": 3.0})):
        rows += [{**row(case, b), "median_s": t, "pass": "forward"} for b, t in times.items()]
    rows.append({**row("c", "numpy"), "median_s": 1.0, "pass": "forward"})  # numba and jax not timed there
    assert wins_lines(rows) == ["forward: fastest in numba 1, numpy 1 of 2 cases where all were timed; time over "
                                "the fastest's, geometric mean: numba 1.22, jax 1.41, numpy 2.00"]
