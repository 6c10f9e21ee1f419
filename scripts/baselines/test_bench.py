"""Tests of the comparison harness that need no venv, no torch and no network.

Run: python3 -m unittest discover -s scripts/baselines -p 'test_*.py'
"""

import gzip
import hashlib
import os
import subprocess
import sys
import tempfile
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench  # noqa: E402

FLSPEC_OUTPUT = """flspec SecAgg MNIST: 2 collaborators (Bengaluru, Portland), 2 round(s), secure aggregation
********** Simulation results **********
+--------+----------------------------+------------------+------------------------------+--------------+
| Rounds | Agg Model Validation Score | Local Train loss | Local Model Validation score | Round time s |
+========+============================+==================+==============================+==============+
|      0 |                     0.0770 |           2.2630 |                       0.3670 |         1.18 |
|      1 |                     0.3670 |           1.7416 |                       0.7170 |         1.07 |
+--------+----------------------------+------------------+------------------------------+--------------+
total 2.26 s; graph fingerprint f10ec9732773182c
"""


class Parsers(unittest.TestCase):
    def test_flspec_table_gives_rounds_total_and_results(self):
        parsed = bench.parse_flspec(FLSPEC_OUTPUT)
        self.assertEqual(parsed["rounds_s"], [1.18, 1.07])
        self.assertEqual(parsed["run_s"], 2.26)
        self.assertEqual(parsed["results"][1], [1.0, 0.367, 1.7416, 0.717])

    def test_python_result_line_behind_a_colour_escape(self):
        text = 'noise\n\x1b[0mBASELINE_RESULT {"run_s": 1.5, "rounds_s": [0.7, 0.8]}\n'
        self.assertEqual(bench.parse_python(text), {"run_s": 1.5, "rounds_s": [0.7, 0.8]})
        self.assertIsNone(bench.parse_python("no result here\n"))


class Measure(unittest.TestCase):
    def test_tree_memory_exit_status_and_cleanup_of_escaped_processes(self):
        with tempfile.TemporaryDirectory() as tmp:
            marker = os.path.join(tmp, "escaped.pid")
            # Two children holding 150 and 100 MiB at once, and one that leaves the session
            # (setsid) and would outlive the run: the harness must count the first two together
            # and stop the third.
            script = (
                "python3 -c 'x = bytearray(150 << 20); import time; time.sleep(1.5)' & "
                "python3 -c 'y = bytearray(100 << 20); import time; time.sleep(1.5)' & "
                f"setsid sh -c 'echo $$ > {marker}; exec sleep 60' & "
                "wait %1 %2; exit 3"
            )
            m = bench.measure(["bash", "-c", script], dict(os.environ), tmp,
                              os.path.join(tmp, "log"), timeout=60)
            self.assertEqual(m["exit"], 3)
            self.assertFalse(m["timed_out"])
            self.assertGreater(m["tree_peak_rss_mib"], 240)
            self.assertGreaterEqual(m["processes"], 3)
            with open(marker) as f:
                escaped = int(f.read())
            deadline = time.monotonic() + 10
            while bench.proc_stat(escaped) is not None and time.monotonic() < deadline:
                time.sleep(0.1)
            self.assertIsNone(bench.proc_stat(escaped), "a process left the session and survived")

    def test_timeout_kills_the_run(self):
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.monotonic()
            m = bench.measure(["sleep", "30"], dict(os.environ), tmp, os.path.join(tmp, "log"), timeout=1)
            self.assertTrue(m["timed_out"])
            self.assertLess(time.monotonic() - t0, 10)


class Ratios(unittest.TestCase):
    @staticmethod
    def make(variant, rep, wall, rounds, rss, pss=None, processes=1):
        return {
            "variant": variant, "rep": rep, "ok": True, "wall_s": wall, "run_s": sum(rounds),
            "rounds_s": rounds, "main_peak_rss_mib": rss, "tree_peak_rss_mib": rss,
            "tree_peak_pss_mib": pss if pss is not None else rss, "cpu_s": wall,
            "processes": processes, "detail": {},
        }

    def test_medians_paired_ratios_and_memory_measure(self):
        runs = [
            self.make("flspec-secagg", 0, 2.0, [1.0, 0.9], 190),
            self.make("flspec-secagg", 1, 4.0, [2.0, 1.8], 190),
            self.make("flspec-secagg", 2, 3.0, [1.5, 1.2], 190),
            self.make("flower-secaggplus", 0, 40.0, [30.0, 3.0], 900, pss=2000, processes=12),
            self.make("flower-secaggplus", 1, 48.0, [30.0, 3.6], 900, pss=2100, processes=12),
            self.make("flower-secaggplus", 2, 45.0, [30.0, 3.3], 900, pss=2050, processes=12),
        ]
        rows = bench.summarise(runs, ["flspec-secagg", "flower-secaggplus"])
        self.assertEqual(rows["flspec-secagg"]["wall"], 3.0)
        self.assertEqual(rows["flspec-secagg"]["warm"], 1.2)
        # Memory: RSS for one process, the tree's PSS for several.
        self.assertEqual(rows["flspec-secagg"]["mem"], 190)
        self.assertEqual(rows["flower-secaggplus"]["mem"], 2050)
        # Paired: 40/2, 48/4, 45/3 -> median 15.
        paired = bench.paired(rows, "flower-secaggplus", "flspec-secagg", lambda r: r["wall_s"])
        self.assertEqual(paired, 15.0)
        self.assertEqual(bench.ratio(rows["flower-secaggplus"]["wall"], rows["flspec-secagg"]["wall"]), 15.0)


class PrepareData(unittest.TestCase):
    def test_checksums_are_verified_and_files_unpacked(self):
        import prepare_data

        with tempfile.TemporaryDirectory() as tmp:
            src, dest = os.path.join(tmp, "src"), os.path.join(tmp, "dest")
            os.makedirs(src)
            sums = []
            for name in prepare_data.NAMES:
                packed = gzip.compress(name.encode())
                with open(os.path.join(src, name + ".gz"), "wb") as f:
                    f.write(packed)
                sums.append(f"{hashlib.sha256(packed).hexdigest()}  {name}.gz\n")
            with open(os.path.join(src, "SHA256SUMS"), "w") as f:
                f.writelines(sums)
            prepare_data.main(["prepare_data.py", src, dest])
            with open(os.path.join(dest, "MNIST", "raw", prepare_data.NAMES[0]), "rb") as f:
                self.assertEqual(f.read(), prepare_data.NAMES[0].encode())
            with open(os.path.join(src, prepare_data.NAMES[1] + ".gz"), "wb") as f:
                f.write(gzip.compress(b"tampered"))
            with self.assertRaises(SystemExit) as e:
                prepare_data.main(["prepare_data.py", src, dest])
            self.assertIn("does not match", str(e.exception))


class Script(unittest.TestCase):
    def test_list_and_unknown_argument(self):
        here = os.path.dirname(os.path.abspath(__file__))
        out = subprocess.run(["bash", os.path.join(here, "compare.sh"), "--list"],
                             capture_output=True, text=True, timeout=60, check=False)
        self.assertEqual(out.returncode, 0, out.stderr)
        for name in ("flspec-secagg", "openfl-secagg", "torch-raw", "flower-secaggplus"):
            self.assertIn(name, out.stdout)
        out = subprocess.run(["bash", os.path.join(here, "compare.sh"), "--bogus"],
                             capture_output=True, text=True, timeout=60, check=False)
        self.assertNotEqual(out.returncode, 0)
        self.assertIn("unknown argument '--bogus'", out.stderr)


if __name__ == "__main__":
    unittest.main()
