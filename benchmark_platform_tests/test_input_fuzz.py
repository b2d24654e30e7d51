"""Property: whatever manifest or option values a user gives, the CLI ends with exit 0 or a documented code (never
a Python traceback), and a refused input leaves every table's row count as it was. Hypothesis mutates a valid
manifest at random paths with hostile values (NaN, huge integers, booleans, NUL, nesting, dates, odd strings) and
feeds random values to the numeric and text options; a bounded number of examples keeps it to a few seconds."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmark_platform.cli import main
from benchmark_platform.manifests import EXAMPLE_MANIFESTS_DIR
from benchmark_platform_tests.factories import DEFAULT_VERSION_KEY, seed_with_model, table_counts

BASE_MANIFEST = yaml.safe_load((EXAMPLE_MANIFESTS_DIR / "qwen2.5-7b.yaml").read_text())
FUZZ = settings(
    max_examples=40,
    deadline=None,  # database round trips vary on a shared machine; the example count bounds the time
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,  # the same examples on every run: CI stays reproducible
    database=None,  # and nothing is written to .hypothesis/
)

hostile_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([2**31 - 1, 2**31, 2**63 - 1, 2**63, -1, 0]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["hf://--trust-remote-code", "s3://b/k", "x\x00y", "2024-07-23", "", "-", "hf://ok/model"]),
    st.dates(),
)
hostile_values = st.recursive(
    hostile_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, (*prefix, index))


MANIFEST_PATHS = [path for path in _paths(BASE_MANIFEST) if path]


def _set(document, path, value):
    target = document
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value


@st.composite
def manifests(draw) -> bytes:
    """A valid manifest with a few fields replaced by hostile values, sometimes raw YAML or bytes instead."""
    kind = draw(st.sampled_from(["mutated", "mutated", "mutated", "raw-text", "raw-bytes"]))
    if kind == "raw-text":
        return draw(st.text(max_size=200)).encode("utf-8", "surrogatepass")
    if kind == "raw-bytes":
        return draw(st.binary(max_size=200))
    document = copy.deepcopy(BASE_MANIFEST)
    for path in draw(st.lists(st.sampled_from(MANIFEST_PATHS), min_size=1, max_size=3)):
        try:
            _set(document, path, draw(hostile_values))
        except (KeyError, IndexError, TypeError):
            pass  # an earlier replacement removed the parent
    return yaml.safe_dump(document, allow_unicode=True).encode("utf-8", "surrogatepass")


def _number_text(value) -> str:
    return repr(value) if isinstance(value, float) and not math.isfinite(value) else str(value)


option_values = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(_number_text),
    st.sampled_from(["nan", "inf", "-inf", "1e12", "1e308", "true", "0", "-0", "0x10", "1_000", ""]),
    st.text(alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=12),
)
BENCH = ["bench-endpoint", "--base-url", "http://127.0.0.1:9", "--model", "m", "--input-tokens", "8"]
BENCH += ["--output-tokens", "4", "--num-requests", "1", "--timeout", "2"]
COMMANDS = {
    # command line before the fuzzed value, the option that takes it, what follows; exit codes besides 0 and 2
    "worker-lease": (["worker", "--model-version", DEFAULT_VERSION_KEY, "--lease-seconds"], ["--max-configs", "1"]),
    "worker-simulate": (
        ["worker", "--model-version", DEFAULT_VERSION_KEY, "--simulate-seconds"],
        ["--max-configs", "1"],
    ),
    "worker-attempts": (["worker", "--model-version", DEFAULT_VERSION_KEY, "--max-attempts"], ["--max-configs", "1"]),
    "worker-max-configs": (["worker", "--model-version", DEFAULT_VERSION_KEY, "--max-configs"], []),
    "worker-hardware": (["worker", "--model-version", DEFAULT_VERSION_KEY, "--hardware"], ["--max-configs", "1"]),
    "progress-window": (["progress", DEFAULT_VERSION_KEY, "--window-minutes"], []),
    "progress-version": (["progress"], []),
    "reap-preemptions": (["reap-stale", "--max-preemptions"], []),
    "recommend-ttft": (["recommend", "--use-case", "chatbot", "--max-ttft-p90-ms"], []),
    "recommend-top": (["recommend", "--use-case", "chatbot", "--top"], []),
    "recommend-use-case": (["recommend", "--use-case"], []),
    "populate-version": (["populate-matrix", "--hardware", "no-such-hardware"], []),
    "bench-concurrency": ([*BENCH, "--concurrency"], []),
    "bench-rate": ([*BENCH, "--request-rate"], []),
    "bench-timeout": ([*BENCH, "--timeout"], []),
    "report-use-case": (["report", "--out", "{out}", "--use-case"], []),
    "report-top": (["report", "--out", "{out}", "--top"], []),
}
# recommend exits 1 when nothing meets the constraints (here: no results yet), bench-endpoint when the run fails
# (here: nothing listens on its port).
ALLOWED_EXIT_CODES = {"recommend": {0, 1, 2}, "bench-endpoint": {1, 2}}


def _assert_clean(result, before: dict[str, int], after: dict[str, int], allowed: set[int]) -> None:
    assert result.exit_code in allowed, (result.exit_code, result.output)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    if result.exit_code != 0:
        assert after == before
        if result.exit_code == 2:
            assert len(result.stderr.splitlines()) == 1, result.stderr


def test_random_manifests_exit_0_or_2_and_refusals_write_nothing(engine, tmp_path: Path) -> None:
    path = tmp_path / "fuzzed.yaml"

    @FUZZ
    @given(content=manifests())
    def register(content: bytes) -> None:
        path.write_bytes(content)
        before = table_counts(engine)
        result = CliRunner().invoke(main, ["register-model", str(path)])
        _assert_clean(result, before, table_counts(engine), {0, 2})

    register()


def test_random_option_values_exit_0_or_2_and_refusals_write_nothing(engine, tmp_path: Path) -> None:
    seed_with_model(engine)
    out = str(tmp_path / "report.html")

    @FUZZ
    @given(command=st.sampled_from(sorted(COMMANDS)), value=option_values)
    def invoke(command: str, value: str) -> None:
        head, tail = COMMANDS[command]
        arguments = [argument.replace("{out}", out) for argument in [*head, value, *tail]]
        if command == "populate-version":
            arguments = [head[0], value, *head[1:]]
        before = table_counts(engine)
        result = CliRunner().invoke(main, arguments)
        _assert_clean(result, before, table_counts(engine), ALLOWED_EXIT_CODES.get(head[0], {0, 2}))

    invoke()
