"""The ``nginx`` action against a real nginx and two real backends (blue, green).

Where traffic went is read from nginx's own access log (``$upstream_addr``), not from the
backends: it proves what nginx did with each request after every switch and reverse.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from pydantic import ValidationError

from backout.actions import ACTIONS, Context, Outcome
from backout.actions.nginx import NginxAction, NginxOptions, render_upstream
from backout.cli import cli
from tests.services import Backend, Handler, Nginx, find_binary, wait_until

N = 200


def colour(name: str) -> Handler:
    return lambda _path: (200, "text/plain", name)


@pytest.fixture
def pair(http_backend: Callable[[Handler], Backend]) -> dict[str, Backend]:
    return {"blue": http_backend(colour("blue")), "green": http_backend(colour("green"))}


def options(nginx: Nginx, pair: dict[str, Backend], **weights: int) -> NginxOptions:
    return NginxOptions.model_validate(
        {
            "upstream_file": str(nginx.include),
            "upstream": nginx.upstream,
            "servers": {name: backend.address for name, backend in pair.items()},
            "weights": weights,
            "config": str(nginx.conf),
            "nginx": nginx.binary,
            "prefix": str(nginx.prefix),
        }
    )


def ctx(tmp_path: Path) -> Context:
    return Context(workdir=tmp_path, timeout=10.0)


def applied(nginx: Nginx, run: Callable[[], Outcome | None]) -> Outcome:
    """Run an execute/reverse and wait until nginx's new workers are the only ones serving."""
    before = nginx.workers()
    outcome = run()
    assert outcome is not None
    assert outcome.ok, outcome
    nginx.wait_reloaded(before)
    return outcome


def traffic(nginx: Nginx, pair: dict[str, Backend], count: int = N) -> Counter[str]:
    """Send ``count`` requests through nginx; count, from its access log, who served them."""
    start = nginx.log_size()
    bodies: Counter[str] = Counter()
    with httpx.Client(base_url=nginx.url, timeout=5) as client:
        for _ in range(count):
            response = client.get("/")
            assert response.status_code == 200, response.text
            bodies[response.text] += 1
    wait_until(lambda: len(nginx.upstreams(start)) >= count, 5, "nginx to log every request")
    names = {backend.address: name for name, backend in pair.items()}
    served = Counter(names.get(address, address) for address in nginx.upstreams(start))
    assert served == bodies  # the log and the answers agree on who served each request
    return served


def test_blue_green_flip_and_reverse(
    nginx: Nginx, pair: dict[str, Backend], tmp_path: Path
) -> None:
    action = NginxAction()
    applied(nginx, lambda: action.execute(options(nginx, pair, blue=100, green=0), ctx(tmp_path)))
    blue_file = nginx.include.read_text()
    assert traffic(nginx, pair, 50) == {"blue": 50}

    flip = options(nginx, pair, blue=0, green=100)
    done = applied(nginx, lambda: action.execute(flip, ctx(tmp_path)))
    assert "green 100%" in done.summary
    assert done.detail["previous"] == blue_file
    assert traffic(nginx, pair, 50) == {"green": 50}

    # the backout: the flip's reverse, from the journaled detail (a JSON round trip)
    detail = json.loads(json.dumps(done.detail))
    back = applied(nginx, lambda: action.reverse(flip, detail, ctx(tmp_path)))
    assert "restored" in back.summary
    assert nginx.include.read_text() == blue_file
    assert traffic(nginx, pair, 50) == {"blue": 50}


def test_canary_weights_then_backout_of_every_stage(
    nginx: Nginx, pair: dict[str, Backend], tmp_path: Path
) -> None:
    action = NginxAction()
    applied(nginx, lambda: action.execute(options(nginx, pair, blue=1, green=0), ctx(tmp_path)))
    start_file = nginx.include.read_text()
    stages: list[tuple[NginxOptions, dict[str, Any]]] = []
    for green in (5, 25, 50, 100):
        stage = options(nginx, pair, blue=100 - green, green=green)
        done = applied(nginx, partial(action.execute, stage, ctx(tmp_path)))
        stages.append((stage, done.detail))
        served = traffic(nginx, pair)
        share = 100 * served["green"] / N
        assert abs(share - green) <= 5, (green, served)
        if green == 100:
            assert served == {"green": N}

    # backing out the stages done so far, last first, lands on the file from before them
    for stage, detail in reversed(stages):
        applied(nginx, partial(action.reverse, stage, detail, ctx(tmp_path)))
    assert nginx.include.read_text() == start_file
    assert traffic(nginx, pair, 50) == {"blue": 50}


def test_rejected_file_is_rolled_back_and_nginx_keeps_serving(
    nginx: Nginx, pair: dict[str, Backend], tmp_path: Path
) -> None:
    action = NginxAction()
    applied(nginx, lambda: action.execute(options(nginx, pair, blue=100, green=0), ctx(tmp_path)))
    good_file = nginx.include.read_text()
    bad = options(nginx, pair, blue=50, green=50).model_copy(
        update={"servers": {"blue": pair["blue"].address, "green": "127.0.0.1:99999"}}
    )

    outcome = action.execute(bad, ctx(tmp_path))

    assert not outcome.ok
    assert "nginx test failed" in outcome.summary
    assert "invalid port" in outcome.summary  # nginx's own words
    assert nginx.include.read_text() == good_file
    assert nginx.process.poll() is None  # the master never stopped
    assert nginx.workers()
    assert traffic(nginx, pair, 20) == {"blue": 20}


def test_failed_reload_restores_the_previous_file(tmp_path: Path) -> None:
    """A valid file that cannot be loaded (nginx is not running) is not left on disk."""
    binary = find_binary("nginx", "/usr/sbin/nginx")
    include = tmp_path / "upstream.conf"
    include.write_text("upstream app {\n    server 127.0.0.1:9;\n}\n")
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\n"
        f"events {{}}\nhttp {{ access_log off; include {include}; }}\n"
    )
    opts = NginxOptions(
        upstream_file="upstream.conf",
        upstream="app",
        servers={"blue": "127.0.0.1:8081", "green": "127.0.0.1:8082"},
        weights={"blue": 0, "green": 1},
        config="nginx.conf",
        nginx=binary,
    )
    outcome = NginxAction().execute(opts, ctx(tmp_path))
    assert not outcome.ok
    assert "nginx reload failed" in outcome.summary
    assert include.read_text() == "upstream app {\n    server 127.0.0.1:9;\n}\n"


def test_missing_nginx_program_fails_cleanly(tmp_path: Path) -> None:
    opts = NginxOptions(
        upstream_file="upstream.conf",
        upstream="app",
        servers={"blue": "127.0.0.1:8081"},
        weights={"blue": 1},
        config="nginx.conf",
        nginx=str(tmp_path / "no-such-nginx"),
    )
    outcome = NginxAction().execute(opts, ctx(tmp_path))
    assert not outcome.ok
    assert "command not found" in outcome.summary
    assert not (tmp_path / "upstream.conf").exists()  # nothing existed, nothing is left


def test_reverse_without_a_recorded_file_refuses(tmp_path: Path) -> None:
    include = tmp_path / "upstream.conf"
    include.write_text("upstream app {}\n")
    opts = NginxOptions(
        upstream_file="upstream.conf",
        upstream="app",
        servers={"blue": "127.0.0.1:8081"},
        weights={"blue": 1},
        config="nginx.conf",
    )
    outcome = NginxAction().reverse(opts, {}, ctx(tmp_path))
    assert not outcome.ok
    assert "recorded no previous upstream file" in outcome.summary
    assert include.read_text() == "upstream app {}\n"


def test_rendered_block_marks_weight_zero_down() -> None:
    text = render_upstream(
        NginxOptions(
            upstream_file="u.conf",
            upstream="checkout",
            servers={"blue": "127.0.0.1:8081", "green": "unix:/run/green.sock"},
            weights={"blue": 0, "green": 100},
            config="nginx.conf",
        )
    )
    assert "upstream checkout {" in text
    assert "server 127.0.0.1:8081 down;  # blue" in text
    assert "server unix:/run/green.sock weight=100;  # green" in text


@pytest.mark.parametrize(
    ("servers", "weights", "message"),
    [
        ({"blue": "a:1", "green": "b:2"}, {"blue": 1}, "no weight for green"),
        ({"blue": "a:1"}, {"blue": 1, "red": 1}, "not in servers: red"),
        ({"blue": "a:1", "green": "b:2"}, {"blue": 0, "green": 0}, "every weight is 0"),
        ({"blue": "a:1; include /etc/passwd"}, {"blue": 1}, "is not an address"),
        ({"blue": "a:1"}, {"blue": 1001}, "give 0 to 1000"),
    ],
)
def test_options_refuse_what_nginx_cannot_take(
    servers: dict[str, str], weights: dict[str, int], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        NginxOptions(
            upstream_file="u.conf", upstream="app", servers=servers, weights=weights, config="c"
        )


def test_registered_and_described() -> None:
    assert isinstance(ACTIONS.get("nginx"), NginxAction)
    opts = NginxOptions(
        upstream_file="u.conf",
        upstream="checkout",
        servers={"blue": "a:1", "green": "b:2"},
        weights={"blue": 75, "green": 25},
        config="c",
    )
    assert NginxAction().describe(opts) == "nginx upstream checkout: blue 75%, green 25%"


def test_a_plan_step_switches_nginx_through_the_engine(
    nginx: Nginx, pair: dict[str, Backend], tmp_path: Path
) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        f"""plan: checkout-back-to-blue
steps:
  - name: all traffic to blue
    nginx:
      upstream_file: {nginx.include}
      upstream: {nginx.upstream}
      servers: {{blue: "{pair["blue"].address}", green: "{pair["green"].address}"}}
      weights: {{blue: 100, green: 0}}
      config: {nginx.conf}
      nginx: {nginx.binary}
    timeout: 20s
"""
    )
    before = nginx.workers()
    result = CliRunner().invoke(
        cli, ["--db", f"sqlite:///{tmp_path / 'b.db'}", "run", str(plan), "--json"], obj={}
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["status"] == "succeeded"
    nginx.wait_reloaded(before)
    assert traffic(nginx, pair, 20) == {"blue": 20}
