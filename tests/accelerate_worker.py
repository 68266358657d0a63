"""Started by tests/test_accelerate.py under a launcher (torchrun / accelerate launch) with two CPU processes:
trains the student of ``problem()`` with ``TrainConfig(accelerate=None)``, which notices the launcher, and lets the
process of rank 0 save the weights. Not a test module itself (no ``test_`` prefix)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from accelerate_problem import problem  # noqa: E402

import labkit as lk  # noqa: E402


def main(out: str, method: str) -> None:
    student, teacher, train, cfg = problem()
    seen = []  # examples this process's student saw in training (not in the teacher-logit cache pass)
    student.register_forward_hook(lambda m, inp, out: seen.append(len(inp[0])) if m.training else None)
    history = lk.fit(student, train, method=method, teacher=teacher, config=cfg)
    print(f"rank {os.environ.get('RANK')} trained on {sum(seen)} examples")
    if lk.is_main_process():
        torch.save({"state": student.state_dict(), "history": history.records}, out)
        print(f"rank 0 of {os.environ.get('WORLD_SIZE')}: saved {out}")
    if torch.distributed.is_initialized():
        torch.distributed.barrier()  # both ranks are done (rank 0 has written the weights) before either leaves


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
    # Leave without running the interpreter's and C++'s exit-time destructors: gloo's threads, torn down at exit
    # (or by destroy_process_group) while the peer still exits, abort now and then with "terminate called without
    # an active exception" (SIGABRT after both ranks trained and rank 0 saved; CI failed on it, with and without an
    # explicit destroy_process_group). What the test reads (stdout, the saved file) is flushed and closed by now.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
