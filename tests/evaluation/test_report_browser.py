"""The listening pages in a real browser: headless Chromium opens ``report.html`` from disk and a
script in the page's context checks that every ``<audio>`` loaded its metadata with the duration of
its file (the browser decoded the wav) and that every image loaded; the page is also screenshot.

Chromium is driven through the DevTools protocol over a pipe (``--remote-debugging-pipe``: JSON
messages separated by NUL bytes on file descriptors 3 and 4), with the standard library only. The
tests skip, saying why, where Debian's ``chromium`` is not installed (``.ci/run`` installs it).
"""
from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import signal
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

import numpy as np
import pytest
import soundfile as sf
from conftest import HOSTILE_NAME, Page, binaural_talkers, demo_names, make_results_folder
from matplotlib.image import imread

from binaural.evaluation.report import PAGE_NAME, write_report, write_separation_page

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CALL_TIMEOUT_S = 30.0  # one DevTools command (the page check waits for media within it)
MEDIA_TIMEOUT_MS = 15000  # in the page: metadata of every player and every image
# Chromium reports a wav's duration from its header; allow rounding to a millisecond.
DURATION_TOLERANCE_S = 1e-3
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--mute-audio",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-extensions", "--no-first-run", "--no-default-browser-check", "--hide-scrollbars",
    "--remote-debugging-pipe",
]

# Runs in the page: waits for every player's metadata and every image (or an error, or the
# timeout), then compares each player's duration with its file's (``expected``: file path -> s).
CHECK_PAGE = """
async (expected, timeoutMs, tolerance) => {
  if (document.readyState !== 'complete') await new Promise(resolve => addEventListener('load', resolve, {once: true}));
  const settle = (element, ready, events) => new Promise(resolve => {
    if (ready()) return resolve();
    for (const event of events) element.addEventListener(event, resolve, {once: true});
  });
  const audios = [...document.querySelectorAll('audio')];
  const images = [...document.images];
  const waits = audios.map(a => settle(a, () => a.readyState >= 1 || a.error, ['loadedmetadata', 'error']))
    .concat(images.map(i => settle(i, () => i.complete, ['load', 'error'])));
  const late = await Promise.race([Promise.all(waits).then(() => false),
                                   new Promise(resolve => setTimeout(() => resolve(true), timeoutMs))]);
  const file = url => decodeURIComponent(new URL(url).pathname);
  const problems = [];
  for (const a of audios) {
    const path = file(a.currentSrc || a.src), want = expected[path];
    if (a.error) problems.push(`${path}: media error ${a.error.code} ${a.error.message}`);
    else if (a.readyState < 1) problems.push(`${path}: no metadata after ${timeoutMs} ms`);
    else if (want === undefined) problems.push(`${path}: a player the test did not expect`);
    else if (!(Math.abs(a.duration - want) <= tolerance)) problems.push(`${path}: plays ${a.duration} s, the file is ${want} s`);
  }
  for (const i of images)
    if (!i.complete || i.naturalWidth === 0) problems.push(`${file(i.currentSrc || i.src)}: image not loaded`);
  return {page: location.href, players: audios.map(a => file(a.currentSrc || a.src)), images: images.length, late, problems};
}
"""


def _chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.skip("Chromium is not installed: `apt-get install -y chromium` (Debian's package; .ci/run installs it)")
    return path


def _high_pipe() -> tuple[int, int]:
    """``os.pipe()`` with both ends moved to descriptors 10 or above (close-on-exec), so that the
    child's dup2 onto 3 and 4 cannot overwrite one end with the other."""
    ends = os.pipe()
    high = tuple(fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in ends)
    for fd in ends:
        os.close(fd)
    return high[0], high[1]


class Chromium:
    """Headless Chromium driven over ``--remote-debugging-pipe``; ``call`` sends one command.

    Started with ``os.posix_spawn`` (no Python code runs between fork and exec, so it is safe in a
    threaded test process), the pipes duplicated onto the descriptors 3 and 4 Chromium reads and
    writes, in a session of its own so that ``close`` can end exactly its processes.
    """

    def __init__(self, executable: str, profile: Path):
        commands_read, self._commands = _high_pipe()  # we write, Chromium reads fd 3
        self._replies, replies_write = _high_pipe()  # Chromium writes fd 4, we read
        self.log = profile.parent / "chromium.log"
        log = os.open(self.log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        actions = [
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
            (os.POSIX_SPAWN_DUP2, log, 2),
            (os.POSIX_SPAWN_DUP2, commands_read, 3),
            (os.POSIX_SPAWN_DUP2, replies_write, 4),
        ]
        argv = [executable, *FLAGS, f"--user-data-dir={profile}", "about:blank"]
        self.pid = os.posix_spawn(executable, argv, dict(os.environ), file_actions=actions, setsid=True)
        for fd in (commands_read, replies_write, log):  # the child's copies are its own now
            os.close(fd)
        self._status: int | None = None
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict] = []

    def exited(self) -> int | None:
        """Chromium's exit status once it has ended (it is reaped once), else None."""
        if self._status is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            self._status = os.waitstatus_to_exitcode(status) if pid else None
        return self._status

    def _receive(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            remaining = deadline - time.monotonic()
            ready, _, _ = select.select([self._replies], [], [], max(0.0, remaining))
            if not ready:
                raise TimeoutError(f"Chromium did not answer within {CALL_TIMEOUT_S:g} s; {self.log_tail()}")
            chunk = os.read(self._replies, 1 << 20)
            if not chunk:
                raise RuntimeError(f"Chromium closed the pipe (exit {self.exited()}); {self.log_tail()}")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def call(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        """Send a command; its result (events received meanwhile are kept in ``events``)."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        data = json.dumps(message).encode() + b"\0"
        while data:
            data = data[os.write(self._commands, data):]
        deadline = time.monotonic() + CALL_TIMEOUT_S
        while True:
            reply = self._receive(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]
            self.events.append(reply)

    def wait_for(self, method: str) -> dict:
        """The first event ``method`` (already received or the next ones)."""
        deadline = time.monotonic() + CALL_TIMEOUT_S
        while True:
            for event in self.events:
                if event.get("method") == method:
                    return event
            self.events.append(self._receive(deadline))

    def log_tail(self) -> str:
        return "its log ends: " + self.log.read_text(errors="replace")[-1500:]

    def close(self) -> None:
        try:
            self.call("Browser.close")
        except (TimeoutError, RuntimeError, OSError):
            pass
        deadline = time.monotonic() + 10
        while self.exited() is None:
            if time.monotonic() > deadline:
                os.killpg(self.pid, signal.SIGKILL)  # the session Chromium leads: its own processes only
                self._status = os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1])
            time.sleep(0.05)
        os.close(self._commands)
        os.close(self._replies)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    chromium = Chromium(_chromium(), tmp_path_factory.mktemp("chromium") / "profile")
    yield chromium
    chromium.close()


def open_and_check(browser: Chromium, page: Path, screenshot: Path) -> dict:
    """Open ``page`` from disk in a new tab, run ``CHECK_PAGE`` there, save a full-page screenshot.

    Returns the check's result, with ``requests``: every URL the page asked for.
    """
    expected = {str(Page(page).file(a["src"])): sf.info(str(Page(page).file(a["src"]))).duration
                for a in Page(page).all("audio")}
    target = browser.call("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = browser.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    try:
        for domain in ("Page", "Network", "Runtime"):
            browser.call(f"{domain}.enable", session=session)
        browser.call("Emulation.setDeviceMetricsOverride",
                     {"width": 1400, "height": 900, "deviceScaleFactor": 1, "mobile": False}, session)
        browser.events.clear()
        navigation = browser.call("Page.navigate", {"url": page.resolve().as_uri()}, session)
        assert "errorText" not in navigation, navigation
        browser.wait_for("Page.loadEventFired")
        check = f"({CHECK_PAGE})({json.dumps(expected)}, {MEDIA_TIMEOUT_MS}, {DURATION_TOLERANCE_S})"
        reply = browser.call("Runtime.evaluate", {"expression": check, "awaitPromise": True, "returnByValue": True},
                             session)
        assert "exceptionDetails" not in reply, reply["exceptionDetails"]
        result = reply["result"]["value"]
        assert result["page"] == page.resolve().as_uri(), result["page"]  # checked in the page itself
        size = browser.call("Page.getLayoutMetrics", session=session)["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], 12000), "scale": 1}
        shot = browser.call("Page.captureScreenshot",
                            {"format": "png", "captureBeyondViewport": True, "clip": clip}, session)
        screenshot.write_bytes(base64.b64decode(shot["data"]))
        result["requests"] = [e["params"]["request"]["url"] for e in browser.events
                              if e.get("method") == "Network.requestWillBeSent"]
        result["expected"] = expected
        return result
    finally:
        browser.call("Target.closeTarget", {"targetId": target})


def _check(result: dict, allowed: list[Path]) -> None:
    assert result["problems"] == [], "\n".join(result["problems"])
    assert not result["late"]
    assert sorted(result["players"]) == sorted(result["expected"])  # every player, each file once
    for url in result["requests"]:  # nothing from the network: the page's own files, or the UA's data: icons
        parts = urlsplit(url)
        assert parts.scheme in ("file", "data"), url
        if parts.scheme == "file":
            path = Path(unquote(parts.path))
            assert any(path.is_relative_to(root.resolve()) for root in allowed), url


def _check_screenshot(path: Path, min_height: int) -> None:
    assert path.read_bytes()[:8] == PNG_MAGIC
    image = imread(path)
    assert image.shape[1] >= 1000 and image.shape[0] >= min_height, image.shape
    assert image.std() > 0.05  # not a blank page


def test_results_page_plays_in_chromium(browser, tmp_path):
    names = [HOSTILE_NAME] + demo_names(11)  # a file name that only an encoded link reaches
    folder = make_results_folder(tmp_path / "results" / "demo" / "1234", names, n_saved=10)
    write_report(folder)
    result = open_and_check(browser, folder / PAGE_NAME, tmp_path / "report.png")
    _check(result, [folder])
    assert len(result["players"]) == 10 * 5 and result["images"] == 10 * 5 + 4  # thumbnails + figures
    assert any(HOSTILE_NAME in p for p in result["players"])
    assert {sf.info(p).subtype for p in result["players"]} == {"PCM_16"}  # what train.py saves
    assert {sf.info(p).samplerate for p in result["players"]} == {8000}  # the model's rate
    _check_screenshot(tmp_path / "report.png", min_height=2000)


def test_separation_page_plays_in_chromium(browser, tmp_path):
    """separate.py's files: 32-bit float estimates at the recording's rate, the recordings as they are."""
    recordings, out = tmp_path / "in", tmp_path / "out"
    recordings.mkdir()
    out.mkdir()
    rng = np.random.default_rng(5)
    separated = []
    for name, rate in (("kitchen", 16000), ("car #1", 44100)):
        talkers = binaural_talkers(rng, int(0.6 * rate), rate, 2)
        sf.write(recordings / f"{name}.wav", talkers.sum(axis=-1), rate, subtype="PCM_24")
        estimates = [out / f"{name}_s{k + 1}.wav" for k in range(2)]
        for k, path in enumerate(estimates):
            sf.write(path, talkers[..., k], rate, subtype="FLOAT")
        separated.append((recordings / f"{name}.wav", estimates))
    page = write_separation_page(out, separated, "a model", 8000)
    result = open_and_check(browser, page, tmp_path / "separated.png")
    _check(result, [out, recordings])
    assert len(result["players"]) == 6 and result["images"] == 6
    _check_screenshot(tmp_path / "separated.png", min_height=300)
