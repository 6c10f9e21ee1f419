"""Reads TensorBoard event files with TensorBoard's own reader, for flspec::fl::history.

Run (as done for the golden file flspec/tests/data/tensorboard_small.tfevents, with
tensorboard 2.21.0 on Python 3 in a scratch venv outside the repository):

    python3 -m venv /tmp/tbvenv && /tmp/tbvenv/bin/pip install tensorboard
    /tmp/tbvenv/bin/python scripts/reference/tensorboard_events.py flspec/tests/data/tensorboard_small.tfevents

The argument is an event file or a log directory (where TensorBoard picks the files whose
name holds "tfevents"). Prints one JSON object: the tensorboard version and, per scalar tag,
[step, value, wall_time] triples, plus the number of events, e.g.
{"tensorboard": "2.21.0", "file_version": 2.0, "scalars": {"loss": [[1, 0.5, 1700000000.5], ...]}}.
flspec/tests/fl_history.rs runs it on freshly written files when `python3 -c "import
tensorboard"` works (or FLSPEC_TENSORBOARD_PYTHON names a Python that has it) and compares the
values with the history written.

The golden file's bytes were made by flspec's EventWriter (fixed wall time 1700000000.5) for
the history in fl_history.rs::small_history(), and this script read them back as:
loss 0.5@1 0.25@2, accuracy 0.75@1 0.875@2, a/loss 0.25@1, a/samples 10@1, ...
The reader checks the TFRecord CRCs (tensorboard/compat/tensorflow_stub/pywrap_tensorflow.py):
with the golden file's last byte flipped it drops round 2's event, and with a byte of round 1's
data flipped it reads nothing after it.
"""
import json
import sys

import tensorboard
from tensorboard.backend.event_processing import event_accumulator

path = sys.argv[1]
acc = event_accumulator.EventAccumulator(path, size_guidance={event_accumulator.SCALARS: 0})
acc.Reload()
scalars = {
    tag: [[e.step, e.value, e.wall_time] for e in acc.Scalars(tag)]
    for tag in sorted(acc.Tags()["scalars"])
}
print(json.dumps({
    "tensorboard": tensorboard.__version__,
    "file_version": acc.file_version,
    "scalars": scalars,
}))
