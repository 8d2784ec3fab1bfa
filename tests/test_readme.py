"""The README's snippets, run as written against live daphne processes on Redis with the demo data.

The convention (README.md, "About the snippets"): every fenced block tagged ``sh``, ``python`` or ``js`` is preceded
by ``<!-- test: NAME -->`` (run here by the test that names it) or ``<!-- not run: REASON -->`` (its syntax is
checked). Snippets address ``127.0.0.1:8000``, ``make run``'s server; the one change made before running one is that
string → the test server's address. ``sh`` runs with bash (commands on its stdin, as if pasted), ``python`` with
``.venv/bin/python`` from a file (``try.py``), ``js`` with node from a file (``try.mjs``) in a folder whose
``node_modules`` are the project's (package.json: the graphql-ws and ws the README says to install). Each runs in an
empty temporary folder with an environment of only ``PATH``, ``HOME`` and ``PYTHONUNBUFFERED=1`` (a pipe is not a
terminal: without it Python would hold printed lines until exit).

Snippets that wait for an event stop after the first one; the test bounds every run and reads what it printed.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from django.apps import apps
from django.contrib.auth.models import AnonymousUser

from erp_demo import realtime as demo_rules
from erp_demo.management.commands.seed_demo import product_rows
from likha_realtime.access.collections import Registry, registry
from tests.embedding.host import COMMANDS as EMBEDDING_COMMANDS
from tests.likha_realtime.support import restore_collection
from tests.live import conftest as live
from tests.live.conftest import ADMIN, StartServer
from tests.live.harness import ROOT, DaphneProcess
from tests.support import write_until_seen

README = ROOT / "README.md"
DEPLOYMENT = ROOT / "docs" / "DEPLOYMENT.md"
ADDRESS = "127.0.0.1:8000"
RUNNABLE = ("sh", "python", "js")
# Tags that would slip a runnable snippet past the convention under another name.
ALIASES = {"bash", "shell", "console", "zsh", "py", "python3", "pycon", "javascript", "mjs", "node", "ts", "typescript"}
FENCE = re.compile(r"^(\s*)```(.*)$")
MARKER = re.compile(r"^<!--\s*(test|not run):\s*(\S.*?)\s*-->$")
# Every name a README marker may use: each is run by exactly one test below.
TESTED = {
    "metrics",
    "http-change",
    "subscribe",
    "public",
    "graphql-subscription",
    "graphql-http",
    "register",
    "collections-setting",
}
SERVERLESS = {"register", "collections-setting"}  # settings and app code: no server address in them
PYTHON = ROOT / ".venv" / "bin" / "python"
NODE = shutil.which("node")
BOUND = 60.0  # seconds: a bound for a failure on a busy machine, not a pace
PRODUCTS = product_rows()  # the demo's products; product n has id n (created in this order on a fresh database)

# The live tests' fixtures (tests/live/conftest.py; redis_server is tests/conftest.py's): one seeded database, daphne
# processes on it.
live_db = live.live_db
start_server = live.start_server


@dataclass(frozen=True)
class Block:
    line: int  # of the opening fence, 1-based
    indent: str
    tag: str
    code: str
    marker: tuple[str, str] | None  # ("test", name) or ("not run", reason), from the line before the fence


def readme_blocks(document: Path = README) -> list[Block]:
    lines = document.read_text().splitlines()
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        fence = FENCE.match(lines[index])
        if fence is None:
            index += 1
            continue
        end = next((j for j in range(index + 1, len(lines)) if lines[j].strip() == "```"), None)
        assert end is not None, f"README.md:{index + 1}: a fenced block that is never closed"
        found = MARKER.match(lines[index - 1].strip()) if index else None
        marker = (found.group(1), found.group(2)) if found else None
        code = "\n".join(lines[index + 1 : end]) + "\n"
        blocks.append(Block(index + 1, fence.group(1), fence.group(2).strip(), code, marker))
        index = end + 1
    return blocks


def readme_prose() -> str:
    """The README with its line breaks as spaces: for checking a sentence that the test backs up."""
    return " ".join(README.read_text().split())


def snippet(name: str, server: DaphneProcess | None = None, document: Path = README) -> str:
    """The block marked ``test: name``, addressed to ``server`` (the one substitution)."""
    found = [block for block in readme_blocks(document) if block.marker == ("test", name)]
    assert len(found) == 1, f"{document.name} has {len(found)} blocks marked `<!-- test: {name} -->`"
    code = found[0].code
    return code.replace(ADDRESS, f"127.0.0.1:{server.port}") if server else code


def snippet_env(home: Path) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "PYTHONUNBUFFERED": "1"}


def run_shell(code: str, folder: Path) -> subprocess.CompletedProcess[str]:
    assert shutil.which("curl"), "The README's shell snippets need curl on PATH."
    return subprocess.run(
        ["bash"], input=code, cwd=folder, env=snippet_env(folder), capture_output=True, text=True, timeout=BOUND
    )


class Running:
    """A snippet running in its own process; each line it prints arrives in a queue (None: it exited)."""

    def __init__(self, argv: list[str], folder: Path) -> None:
        self.process = subprocess.Popen(
            argv,
            cwd=folder,
            env=snippet_env(folder),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stderr: list[str] = []
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    @classmethod
    def python(cls, code: str, folder: Path) -> Running:
        assert PYTHON.exists(), f"{PYTHON} is missing: run `make install-dev` (the README runs snippets with it)."
        (folder / "try.py").write_text(code)
        return cls([str(PYTHON), "try.py"], folder)

    @classmethod
    def node(cls, code: str, folder: Path) -> Running:
        assert NODE, "The README's js snippets need Node.js 20 or newer on PATH."
        for package in ("graphql-ws", "ws"):
            assert (ROOT / "node_modules" / package).exists(), f"npm package {package} missing: run `npm ci`."
        (folder / "node_modules").symlink_to(ROOT / "node_modules", target_is_directory=True)
        (folder / "try.mjs").write_text(code)
        return cls([NODE, "try.mjs"], folder)

    def _read_stdout(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        self.stderr.extend(self.process.stderr)

    def line(self, timeout: float = BOUND) -> str:
        found = self.next_line(timeout)
        assert found is not None, f"the snippet printed nothing within {timeout}s; stderr: {''.join(self.stderr)}"
        return found

    def next_line(self, timeout: float) -> str | None:
        """The next printed line, or None when nothing came within ``timeout``; fails if the snippet exited."""
        try:
            found = self.lines.get(timeout=timeout)
        except queue.Empty:
            return None
        if found is None:
            self.process.wait(timeout=BOUND)
            raise AssertionError(f"the snippet exited ({self.process.returncode}): {''.join(self.stderr)}")
        return found

    def finish(self) -> list[str]:
        """Wait for the snippet to exit by itself (within the bound): the lines it printed since the last read."""
        try:
            self.process.wait(timeout=BOUND)
        except subprocess.TimeoutExpired:
            self.stop()
            raise AssertionError(f"the snippet did not exit within {BOUND}s") from None
        rest: list[str] = []
        while (found := self.lines.get(timeout=BOUND)) is not None:
            rest.append(found)
        assert self.process.returncode == 0, f"exit status {self.process.returncode}: {''.join(self.stderr)}"
        return rest

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def running() -> Iterator[list[Running]]:
    """Snippets started by a test; any still running at its end are killed."""
    started: list[Running] = []
    yield started
    for run in started:
        run.stop()


def assert_frame(line: str, expected: dict[str, Any]) -> None:
    """``line`` is the JSON object ``expected``, keys in the same order."""
    frame = json.loads(line)
    assert frame == expected
    assert list(frame) == list(expected)


def request(server: DaphneProcess, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    sent = urllib.request.Request(server.http + path, data=data, headers=headers, method=method)
    with urllib.request.urlopen(sent, timeout=10) as response:
        return json.loads(response.read())


def stock_of_product_1(server: DaphneProcess, token: str) -> int:
    return int(request(server, "GET", "/items/products/1", token=token)["data"]["stock"])


# -- the convention ----------------------------------------------------------------------------------------------


def test_every_runnable_readme_block_is_run_or_says_why_not() -> None:
    blocks = readme_blocks()
    names = [block.marker[1] for block in blocks if block.marker and block.marker[0] == "test"]
    for block in blocks:
        where = f"README.md:{block.line}"
        assert not block.indent, f"{where}: fenced blocks start at the line's beginning (the test reads only those)"
        assert block.tag not in ALIASES, f"{where}: tag `{block.tag}` - use sh, python or js (run) or text"
        if block.tag in RUNNABLE:
            assert block.marker, f"{where}: add `<!-- test: NAME -->` or `<!-- not run: REASON -->` before it"
        else:
            assert block.tag == "text", f"{where}: an untagged block - tag it text (output, listings) or sh/python/js"
            assert block.marker is None, f"{where}: a marker on a `text` block, which is never run"
    assert sorted(names) == sorted(TESTED), "each test name is used once, and each has its test here"


def test_not_run_readme_blocks_are_valid_code(tmp_path: Path) -> None:
    checked = 0
    for block in readme_blocks():
        if block.marker is None or block.marker[0] != "not run":
            continue
        checked += 1
        if block.tag == "python":
            compile(block.code, f"README.md:{block.line}", "exec")
            continue
        source = tmp_path / f"block{block.line}.{'mjs' if block.tag == 'js' else 'sh'}"
        source.write_text(block.code)
        command = [NODE or "node", "--check", str(source)] if block.tag == "js" else ["bash", "-n", str(source)]
        result = subprocess.run(command, capture_output=True, text=True, timeout=BOUND, check=False)
        assert result.returncode == 0, f"README.md:{block.line}: {result.stderr}"
    assert checked >= 1


def test_run_snippets_address_make_runs_server_and_nothing_else() -> None:
    for name in TESTED - SERVERLESS:
        code = snippet(name)
        assert ADDRESS in code, name
        assert "localhost" not in code, name
        assert set(re.findall(r"\b\d{1,3}(?:\.\d{1,3}){3}:\d+", code)) == {ADDRESS}, name
    for name in SERVERLESS:
        assert ":8000" not in snippet(name), name


def test_readme_pins_the_clients_the_tests_use() -> None:
    readme = README.read_text()
    websockets = re.search(r"^websockets==(\S+)", (ROOT / "requirements-dev.txt").read_text(), re.MULTILINE)
    assert websockets, "requirements-dev.txt pins websockets"
    assert f".venv/bin/pip install websockets=={websockets.group(1)}`" in readme
    npm = json.loads((ROOT / "package.json").read_text())["dependencies"]
    assert f"npm install graphql-ws@{npm['graphql-ws']} ws@{npm['ws']}`" in readme


def test_readme_install_command_is_the_one_the_embedding_test_runs() -> None:
    """The README's ``pip install`` block is, line for line, what tests/embedding runs in a fresh virtualenv."""
    installs = [block for block in readme_blocks() if re.search(r"^\s*pip install", block.code, re.MULTILINE)]
    assert [(block.tag, block.code) for block in installs] == [("sh", f"{EMBEDDING_COMMANDS['install']}\n")]
    reason = "installs into your environment; tests/embedding runs this command in a fresh virtualenv"
    assert installs[0].marker == ("not run", reason)


# -- "Exposing your models" --------------------------------------------------------------------------------------

# Who the rules are asked about: the public role, a user without rights on orders, one who may change orders.
USERS = {
    "public": AnonymousUser(),
    "viewer": SimpleNamespace(is_authenticated=True, has_perm=lambda perm: perm == "erp_demo.view_salesorder"),
    "changer": SimpleNamespace(is_authenticated=True, has_perm=lambda perm: perm == "erp_demo.change_salesorder"),
}


def test_register_snippet_registers_what_the_demo_registers() -> None:
    """The README's AppConfig.ready() runs, names real models and permissions, and its rules are the demo's."""
    originals = {name: registry.get(name) for name in ("products", "sales_orders")}
    namespace: dict[str, Any] = {"__name__": "readme_register"}
    exec(compile(snippet("register"), "README.md (register)", "exec"), namespace)
    try:
        namespace["ErpDemoConfig"].ready(apps.get_app_config("erp_demo"))
        products, orders = registry.get("products"), registry.get("sales_orders")
        assert products is not None and orders is not None
        assert products.model is apps.get_model("erp_demo", "Product")
        assert orders.model is apps.get_model("erp_demo", "SalesOrder")
        assert products.field_rule is not None and orders.row_rule is not None
        for who, user in USERS.items():
            assert products.field_rule(user) == demo_rules.product_fields(user), who
            assert orders.row_rule(user) == demo_rules.sales_order_rows(user), who
        assert orders.row_rule(USERS["changer"]) is None
    finally:
        for original in originals.values():
            assert original is not None
            restore_collection(original)


def test_collections_setting_snippet_loads_the_demo_models_and_rules() -> None:
    namespace: dict[str, Any] = {}
    exec(compile(snippet("collections-setting"), "README.md (collections-setting)", "exec"), namespace)
    loaded = Registry()
    loaded.load_settings(namespace["LIKHA_REALTIME"]["COLLECTIONS"])
    customers, orders = loaded.get("customers"), loaded.get("sales_orders")
    assert customers is not None and customers.model is apps.get_model("erp_demo", "Customer")
    assert orders is not None and orders.model is apps.get_model("erp_demo", "SalesOrder")
    assert orders.row_rule is demo_rules.sales_order_rows


def test_deployment_sentinel_settings_build_a_sentinel_channel_layer() -> None:
    """docs/DEPLOYMENT.md's CHANNEL_LAYERS for Redis Sentinel is a shape the pinned channels-redis accepts."""
    from channels_redis.utils import create_pool
    from redis.asyncio.sentinel import SentinelConnectionPool

    from likha_realtime.layers import RedisChannelLayer

    namespace: dict[str, Any] = {}
    exec(compile(snippet("sentinel", document=DEPLOYMENT), "DEPLOYMENT.md (sentinel)", "exec"), namespace)
    layer = namespace["CHANNEL_LAYERS"]["default"]
    assert layer["BACKEND"] == "likha_realtime.layers.RedisChannelLayer"
    RedisChannelLayer(**layer["CONFIG"])  # accepts every key (connects only when used)
    (host,) = layer["CONFIG"]["hosts"]
    pool = create_pool(host)  # what channels-redis builds for the entry
    assert isinstance(pool, SentinelConnectionPool)
    assert pool.service_name == "likha" and pool.max_connections == 1000
    assert pool.sentinel_manager.sentinels[0].connection_pool.connection_kwargs["password"] == "sentinel-secret"
    kwargs = pool.connection_kwargs
    assert (kwargs["password"], kwargs["db"], kwargs["socket_timeout"]) == ("redis-secret", 0, 15)


# -- "Try it", against live servers ------------------------------------------------------------------------------


@pytest.mark.live
def test_subscription_snippet_hears_the_http_snippets_change(
    start_server: StartServer, tmp_path: Path, running: list[Running]
) -> None:
    server = start_server()
    token = server.login(*ADMIN)["access_token"]
    stock = stock_of_product_1(server, token)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sh").mkdir()

    subscriber = Running.python(snippet("subscribe", server), tmp_path / "sub")
    running.append(subscriber)
    auth = json.loads(subscriber.line())
    assert list(auth) == ["type", "status", "refresh_token"]
    assert auth["type"] == "auth" and auth["status"] == "ok" and auth["refresh_token"].count(".") == 2
    # init is sent once the subscription has joined the fan-out: a write after it is heard
    row = {"id": 1, "name": PRODUCTS[0]["name"], "stock": stock}
    assert_frame(subscriber.line(), {"type": "subscription", "event": "init", "data": [row], "uid": "s1"})

    change = run_shell(snippet("http-change", server), tmp_path / "sh")
    assert (change.returncode, change.stderr) == (0, "")
    patched = json.loads(change.stdout)["data"]
    assert list(patched) == ["id", "name", "sku", "price", "stock", "status", "updated"]
    assert (patched["id"], patched["sku"], patched["stock"]) == (1, "SKU-0001", stock + 1)

    row = {"id": 1, "name": PRODUCTS[0]["name"], "stock": stock + 1}
    assert_frame(subscriber.line(), {"type": "subscription", "event": "update", "data": [row], "uid": "s1"})
    assert subscriber.finish() == []
    assert subscriber.stderr == []

    # "without a token the PATCH answers 403 (the public role may only view products)"
    with pytest.raises(urllib.error.HTTPError) as refused:
        request(server, "PATCH", "/items/products/1", {"stock": 0})
    assert refused.value.code == 403
    assert json.loads(refused.value.read())["errors"][0]["extensions"] == {"code": "FORBIDDEN"}
    assert "without a token the PATCH answers 403 (the public role may only view products)" in readme_prose()


@pytest.mark.live
def test_public_mode_snippet_reads_products_but_not_their_stock(
    start_server: StartServer, tmp_path: Path, running: list[Running]
) -> None:
    server = start_server(WEBSOCKETS_REST_AUTH="public")
    public = Running.python(snippet("public", server), tmp_path)
    running.append(public)
    rows = [{"id": n, "name": PRODUCTS[n - 1]["name"], "price": str(PRODUCTS[n - 1]["price"])} for n in (1, 2)]
    assert_frame(public.line(), {"type": "subscription", "event": "init", "data": rows, "uid": "p1"})
    message = 'You don\'t have permission to access field "stock" in collection "products".'
    forbidden = {"code": "FORBIDDEN", "message": message}
    assert_frame(public.line(), {"type": "subscribe", "status": "error", "error": forbidden, "uid": "p2"})
    assert public.finish() == []
    assert public.stderr == []


@pytest.mark.live
def test_graphql_snippet_prints_the_first_update(
    start_server: StartServer, tmp_path: Path, running: list[Running]
) -> None:
    server = start_server()
    token = server.login(*ADMIN)["access_token"]
    client = Running.node(snippet("graphql-subscription", server), tmp_path)
    running.append(client)
    written: list[int] = []

    def write() -> None:
        # graphql-ws says nothing when a subscription is live: write until the client hears one
        stock = stock_of_product_1(server, token) + 1
        request(server, "PATCH", "/items/products/1", {"stock": stock}, token)
        written.append(stock)

    line = write_until_seen(write, client.next_line)
    heard = json.loads(line)["data"]["products_mutated"]["data"]["stock"]
    assert heard in written
    row = {"id": "1", "name": PRODUCTS[0]["name"], "stock": heard}
    assert_frame(line, {"data": {"products_mutated": {"key": "1", "event": "update", "data": row}}})
    assert client.finish() == []
    assert client.stderr == []


@pytest.mark.live
def test_operators_snippet_prints_readiness_and_who_may_read_the_metrics(
    start_server: StartServer, tmp_path: Path
) -> None:
    result = run_shell(snippet("metrics", start_server()), tmp_path)
    assert (result.returncode, result.stderr) == (0, "")
    shown = README.read_text().split("<!-- test: metrics -->", 1)[1].split("```text\n", 1)[1].split("```", 1)[0]
    assert result.stdout == shown


@pytest.mark.live
def test_graphql_over_http_snippet_lists_the_dearest_products(start_server: StartServer, tmp_path: Path) -> None:
    server = start_server()
    result = run_shell(snippet("graphql-http", server), tmp_path)
    assert (result.returncode, result.stderr) == (0, "")
    dearest = sorted(enumerate(PRODUCTS, start=1), key=lambda numbered: -numbered[1]["price"])[:3]
    rows = [{"id": str(n), "name": row["name"], "price": str(row["price"])} for n, row in dearest]
    assert_frame(result.stdout, {"data": {"products": rows}})


@pytest.mark.live
@pytest.mark.parametrize("ide", ["", "true"], ids=["default", "GRAPHQL_IDE"])
def test_get_graphql_serves_graphiql_only_when_switched_on_as_the_readme_says(
    start_server: StartServer, ide: str
) -> None:
    server = start_server(GRAPHQL_IDE=ide)
    page = urllib.request.Request(server.http + "/graphql", headers={"Accept": "text/html"})
    if ide:
        with urllib.request.urlopen(page, timeout=10) as response:
            assert response.status == 200
            assert "<title>Strawberry GraphiQL</title>" in response.read().decode()
    else:
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(page, timeout=10)
        assert refused.value.code == 404
    said = "`GET /graphql` in a browser serves strawberry's GraphiQL page only with `GRAPHQL_IDE=true`"
    assert said in readme_prose()
