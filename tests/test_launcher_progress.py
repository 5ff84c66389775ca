"""Progress of running runs, read from their log.txt (vlprompt/launchers/progress.py): bars on a terminal, a
periodic status line without one."""
import io

from vlprompt.launchers.progress import Active, ProgressDisplay, RunProgress, parse_progress, read_progress

TRAIN = ("epoch [{e}/5] batch [{b}/4] time 0.105 (0.120) data 0.001 (0.002) loss 1.2031 (1.3650) acc 50.0000 "
         "(43.7500) lr 2.0000e-03 eta {eta}")


def write_log(folder, *lines):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "log.txt").write_text("\n".join(lines) + "\n")
    return str(folder)


def test_the_train_line_gives_epoch_batch_and_eta(tmp_path):
    assert read_progress(str(tmp_path / "none")) is None
    run = write_log(tmp_path / "run", "** vlprompt log started", "Loading CLIP ...")
    assert read_progress(run) == RunProgress("starting")
    run = write_log(tmp_path / "run", TRAIN.format(e=1, b=4, eta="0:00:09"), TRAIN.format(e=2, b=3, eta="0:00:07"))
    p = read_progress(run)
    assert p == RunProgress("training", 2, 5, 3, 4, "0:00:07") and p.fraction == 7 / 20
    assert p.describe() == "epoch 2/5 batch 3/4 eta 0:00:07"
    assert parse_progress(TRAIN.format(e=1, b=1, eta="1 day, 2:03:04")).eta == "1 day, 2:03:04"
    done = parse_progress(TRAIN.format(e=5, b=4, eta="0:00:00") + "\nFinish training\nEvaluate on the *test* set")
    assert done == RunProgress("testing") and done.fraction == 1.0
    assert read_progress(run, since=10 ** 12) is None  # a log older than the run's start: an earlier attempt's


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_without_a_terminal_one_status_line_every_interval(tmp_path):
    run = write_log(tmp_path / "a", TRAIN.format(e=3, b=2, eta="0:01:05"))
    stream, clock = io.StringIO(), Clock()
    display = ProgressDisplay(4, stream=stream, terminal=False, every_s=60, clock=clock)
    counts = {"done": 1, "failed": 0, "running": 1, "pending": 2}
    display.update(counts, [Active("[CPU 0]", "a-seed1-train", run)])
    clock.now = 59
    display.update(counts, [Active("[CPU 0]", "a-seed1-train", run)])
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].endswith(
        "] 1/4 finished (1 done, 1 running, 2 pending); running: a-seed1-train (epoch 3/5 batch 2/4 eta 0:01:05)")
    clock.now = 60
    display.update({"done": 2, "failed": 1, "running": 0, "pending": 1}, [])
    assert stream.getvalue().splitlines()[1].endswith("] 3/4 finished (2 done, 1 failed, 1 pending)")
    display.write("  done   a-seed1-train")
    assert stream.getvalue().splitlines()[2] == "  done   a-seed1-train"


def test_on_a_terminal_a_bar_per_running_run_under_the_protocols(tmp_path):
    a = write_log(tmp_path / "a", TRAIN.format(e=2, b=1, eta="0:00:40"))
    b = write_log(tmp_path / "b", "Finish training", "Evaluate on the *test* set")
    stream = io.StringIO()
    display = ProgressDisplay(6, stream=stream, terminal=True, refresh_s=0)
    display.update({"done": 2, "failed": 1, "running": 2, "pending": 1},
                   [Active("[GPU 0 0]", "caltech101-seed1-train", a), Active("[GPU 0 1]", "dtd-seed1-test", b)])
    text = stream.getvalue()
    assert "protocol 3/6 (2 done, 1 failed, 2 running, 1 pending) |" in text
    assert "[GPU 0 0] caltech101-seed1-train: epoch 2/5 batch 1/4 eta 0:00:40 |" in text
    assert "[GPU 0 1] dtd-seed1-test: testing |" in text
    assert sorted(display._bars) == ["[GPU 0 0]", "[GPU 0 1]"]
    display.update({"done": 3, "failed": 1, "running": 1, "pending": 1}, [Active("[GPU 0 1]", "dtd-seed1-test", b)])
    assert sorted(display._bars) == ["[GPU 0 1]"]  # the finished run's bar is gone
    display.write("  done   caltech101-seed1-train")  # above the bars
    assert "  done   caltech101-seed1-train\n" in stream.getvalue()
    display.close()
    assert display._bars == {} and display._summary is None
