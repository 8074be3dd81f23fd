"""Unpack a tarball of scripts/device/measure-commits.sh into this checkout's results tree.

Usage: merge_results.py TARBALL RESULTS_DIR NOISE_DIR

The tarball holds results/MACHINE/*.json (one machine), results/benchmarks.json and
noise/COMMIT/*.json. Its machine's files go to RESULTS_DIR/MACHINE/, its noise runs to
NOISE_DIR/MACHINE/COMMIT/. Invariants: no file outside those folders is written; no existing
file is overwritten or deleted. A file that is already there with the same bytes is skipped; one
with other bytes is a conflict, and then nothing at all is written (exit 2). Two files are
kept as they are here, with a note, when they differ: MACHINE/machine.json (asv rewrites it on
every run) and benchmarks.json (the suite's description; the one here describes this checkout).
"""

import os
import re
import sys
import tarfile

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
KEPT_IF_DIFFERENT = ("machine.json", "benchmarks.json")


def fail(message):
    print(f"merge-results: {message}", file=sys.stderr)
    sys.exit(2)


def planned_files(tarball, results_dir, noise_dir):
    """``(machine, [(destination, bytes)])`` of the tarball's files, one entry per destination;
    fails on anything else in it, and on two entries for one destination."""
    try:
        archive = tarfile.open(tarball)
    except (OSError, tarfile.TarError) as error:
        fail(f"{tarball} is not a readable tarball ({error}): pass the MACHINE-results.tar.gz that measure-commits.sh wrote")
    files, machines = [], set()
    with archive:
        for member in archive.getmembers():
            parts = [p for p in member.name.split("/") if p not in ("", ".")]
            if member.isdir():
                continue
            if not member.isfile() or not parts or not all(NAME.match(p) for p in parts) or not parts[-1].endswith(".json"):
                fail(f"{tarball} holds {member.name!r}, which measure-commits.sh does not write: not merged")
            if parts == ["results", "benchmarks.json"]:
                destination = os.path.join(results_dir, "benchmarks.json")
            elif len(parts) == 3 and parts[0] == "results":
                machines.add(parts[1])
                destination = os.path.join(results_dir, parts[1], parts[2])
            elif len(parts) == 3 and parts[0] == "noise":
                destination = ("noise", parts[1], parts[2])  # placed once the machine is known
            else:
                fail(f"{tarball} holds {member.name!r}, which measure-commits.sh does not write: not merged")
            files.append((destination, archive.extractfile(member).read()))
    if len(machines) != 1:
        fail(f"{tarball} holds results of {len(machines)} machines ({', '.join(sorted(machines)) or 'none'}); measure-commits.sh packs one")
    (machine,) = machines
    placed = [(os.path.join(noise_dir, machine, d[1], d[2]) if isinstance(d, tuple) else d, data) for d, data in files]
    seen = set()
    for destination, _ in placed:
        key = os.path.normpath(os.path.abspath(destination))
        if key in seen:
            fail(f"{tarball} holds two entries for {destination}: not merged (pack each file once)")
        seen.add(key)
    return machine, placed


def main(tarball, results_dir, noise_dir):
    machine, files = planned_files(tarball, results_dir, noise_dir)
    to_write, conflicts, notes = [], [], []
    for destination, data in files:
        if not os.path.exists(destination):
            to_write.append((destination, data))
            continue
        with open(destination, "rb") as f:
            if f.read() == data:
                continue
        if os.path.basename(destination) in KEPT_IF_DIFFERENT:
            notes.append(f"{destination} differs from the tarball's: the one here is kept")
        else:
            conflicts.append(destination)
    if conflicts:
        fail(
            f"{len(conflicts)} files of {tarball} are already here with other contents, nothing was merged: "
            + ", ".join(conflicts)
            + " (move them away first if the tarball's should replace them)"
        )
    for destination, data in to_write:
        os.makedirs(os.path.dirname(destination), exist_ok=True)
        with open(destination, "xb") as f:
            f.write(data)
    for note in notes:
        print(f"merge-results: {note}")
    print(f"merge-results: machine {machine}: {len(to_write)} files added, {len(files) - len(to_write)} already here")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        fail("usage: merge_results.py TARBALL RESULTS_DIR NOISE_DIR")
    main(*sys.argv[1:])
