"""The operator's console of a running bot: GET /state, POST /halt, /resume, /stop behind the
bearer token, and the Telegram commands against a loopback stand-in for the Bot API
(see README, The operator's console)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.e2e.ops_harness import BotProcess, bot_process, fake_telegram, free_port
from tests.waiting import wait_until

TOKEN = "control-Tok3n-e2e-5f1c"
ENV = {"ARB_CONTROL_TOKEN": TOKEN}
ARGS = ("--mock", "--loops", "100000", "--interval", "0.05")


def _health(port: int, **extra: Any) -> dict[str, Any]:
    return {"health_server": {"enabled": True, "host": "127.0.0.1", "port": port}, **extra}


def post(url: str, token: str | None = None) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    request = urllib.request.Request(url, data=b"", headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def state(base: str) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"{base}/state", timeout=10) as response:
            document: dict[str, Any] = json.loads(response.read())
            return document
    except (urllib.error.URLError, ConnectionError):
        return None


def _serving(bot: BotProcess, base: str) -> dict[str, Any]:
    bot.wait_for(r"health endpoint listening on ")
    return wait_until(lambda: state(base), 30, "a console state on /state", proc=bot.proc)


def test_halt_resume_and_stop_over_http_with_the_token(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with bot_process(tmp_path, *ARGS, overrides=_health(port), env=ENV) as bot:
        first = _serving(bot, base)
        assert first["mode"] == "mock" and first["halted"] is False
        assert set(first["spreads"]) == {"BTC", "ETH"}
        assert set(first["spreads"]["BTC"]) == {"upbit>binance", "binance>upbit"}
        assert set(first["venues"]) == {"upbit", "binance"}
        assert {"day", "realized", "fees", "trades"} <= set(first["today"])

        assert post(f"{base}/halt")[0] == 401
        assert post(f"{base}/halt", "wrong-token")[0] == 401
        assert not (tmp_path / ".halt").exists()
        code, body = post(f"{base}/halt", TOKEN)
        assert code == 200 and body["action"] == "halt", body
        assert (tmp_path / ".halt").exists()  # survives a restart: the halt file itself
        halted = wait_until(lambda: (s := state(base)) and s["halted"] and s, 30, "halted in /state")
        assert ".halt" in halted["halt_reason"]

        code, body = post(f"{base}/resume", TOKEN)
        assert code == 200 and not (tmp_path / ".halt").exists()
        wait_until(lambda: (s := state(base)) and not s["halted"], 30, "not halted in /state")

        assert post(f"{base}/nope", TOKEN)[0] == 404
        code, body = post(f"{base}/stop", TOKEN)
        assert code == 200 and body["result"] == "stopping after this tick"
        run = bot.finish(timeout=60)
    assert run.code == 0, run.stderr
    live = (run.log_dir / "live_loop.log").read_text(encoding="utf-8")
    assert "stopped: stop requested by POST /stop from 127.0.0.1" in live
    health = (run.log_dir / "health.log").read_text(encoding="utf-8")
    assert "refused POST /halt from 127.0.0.1" in health and "wrong bearer token" in health
    for text in [run.stdout, run.stderr, *(p.read_text(encoding="utf-8") for p in run.log_dir.glob("*.log"))]:
        assert TOKEN not in text


def test_control_is_disabled_without_the_token_variable(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with bot_process(tmp_path, *ARGS, overrides=_health(port)) as bot:
        _serving(bot, base)
        code, body = post(f"{base}/stop", "anything")
        assert code == 403 and "ARB_CONTROL_TOKEN" in body["error"], body
        assert bot.proc.poll() is None  # still running
        bot.send(__import__("signal").SIGTERM)
        assert bot.finish(timeout=60).code == 0


OWNER, STRANGER = 4242, 777


def test_telegram_commands_from_the_configured_chat_only(tmp_path: Path) -> None:
    with fake_telegram("ok") as telegram:
        env = {"TELEGRAM_BOT_TOKEN": "99:commands-e2e", "TELEGRAM_CHAT_ID": str(OWNER)}
        overrides = {"alerts": {"telegram_base_url": telegram.url, "poll_timeout_s": 1}}
        with bot_process(tmp_path, *ARGS, overrides=overrides, env=env) as bot:
            bot.wait_for(r"telegram commands: listening")
            bot.wait_for(r"(?s)\[METRICS\].*\[METRICS\]")  # a console state exists

            def reply_to(text: str, chat: int = OWNER) -> str:
                before = len(telegram.replies(chat))
                telegram.message(chat, text)
                return wait_until(
                    lambda: telegram.replies(chat)[before:], 30, f"a reply to {text}", proc=bot.proc
                )[0]

            telegram.message(STRANGER, "/stop")
            status = reply_to("/status")  # answered after the stranger's /stop, which did nothing
            assert bot.proc.poll() is None
            assert "arb-1 (mock) tick" in status and "watchdog" in status and "entry at 0.3%" in status
            assert telegram.replies(STRANGER) == []
            assert "/profit [days]" in reply_to("/help")
            assert reply_to("/profit 3").startswith("profit ")
            assert "days must be a whole number" in reply_to("/profit soon")
            assert "upbit:" in reply_to("/balance")
            assert reply_to("/positions")
            assert reply_to("/halt").startswith("halted:")
            assert (tmp_path / ".halt").exists()
            assert reply_to("/resume").startswith("resumed:")
            assert reply_to("/stop") == "stopping after this tick"
            run = bot.finish(timeout=60)
    assert run.code == 0, run.stderr
    alerts_log = (run.log_dir / "live_loop.log").read_text(encoding="utf-8")
    assert "telegram: ignored a message from chat 777" in alerts_log
    assert "stop requested by telegram /stop" in alerts_log
