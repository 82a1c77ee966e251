#!/usr/bin/python3
"""The README works as written, for a new user on a clean clone.

usage: test_readme.py QSIM_BINARY SOURCE_DIR

- every `scripts/NAME` the README names, and every one docs/ name that starts with #! (a program; a
  module docs/ mention, such as qsim_array_ref.py, may be a plain library file), is executable and starts
  with a #! line naming /usr/bin/python3 (Debian's, with the packages scripts/setup-deps installs) or a
  shell; every Python one answers `--help` with status 0 while a `python3` that always fails is first on
  the PATH;
- every command of the README's indented blocks that starts with `build/cli/qsim` or `scripts/report`
  runs as written (status 0) in a scratch folder that sees the repository's models/, scripts/, traces/
  and the qsim under test as build/cli/qsim, so every file it names ships or is written by an earlier
  command (the `import` and what reads its output are skipped when the onnx package is missing);
- models/onnx/example_qdq.onnx is what scripts/make_onnx_example.py writes.
"""
import glob
import os
import re
import shlex
import subprocess
import sys
import tempfile

FAILS = []


def check(cond, msg, detail=""):
    print(("ok   " if cond else "FAIL ") + msg + ("" if cond or not detail else "\n     " + detail[-1500:]))
    if not cond:
        FAILS.append(msg)
    return cond


def shown_scripts(root):
    names = set()
    for path in [os.path.join(root, "README.md")] + glob.glob(os.path.join(root, "docs", "*.md")):
        readme = path.endswith("README.md")
        with open(path, encoding="utf-8") as f:
            for m in re.finditer(r"\bscripts/([A-Za-z0-9_.-]+)", f.read()):
                p = os.path.join(root, "scripts", m.group(1).rstrip("."))
                if not os.path.isfile(p) or p.endswith((".c", ".toml")):
                    continue
                with open(p, "rb") as g:
                    program = g.read(2) == b"#!"
                if readme or program:
                    names.add(p)
    return sorted(names)


def readme_commands(root):
    """Indented (4-space) README lines, continuation lines joined, comments dropped."""
    cmds, cur = [], ""
    with open(os.path.join(root, "README.md"), encoding="utf-8") as f:
        for line in f:
            if not line.startswith("    ") and not cur:
                continue
            cur += line.strip()
            if cur.endswith("\\"):
                cur = cur[:-1] + " "
                continue
            words = shlex.split(cur, comments=True)
            cur = ""
            if words and words[0] in ("build/cli/qsim", "scripts/report"):
                cmds.append(words)
    return cmds


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    qsim, root = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    with tempfile.TemporaryDirectory() as tmp:
        fake = os.path.join(tmp, "fakebin")
        os.makedirs(fake)
        with open(os.path.join(fake, "python3"), "w") as f:
            f.write("#!/bin/sh\necho 'the python3 first on the PATH was used' >&2\nexit 97\n")
        os.chmod(os.path.join(fake, "python3"), 0o755)
        env = dict(os.environ, PATH=fake + os.pathsep + os.environ.get("PATH", ""), MPLBACKEND="Agg")

        scripts = shown_scripts(root)
        check(len(scripts) >= 8, "the README and docs name scripts (%d found)" % len(scripts))
        for p in scripts:
            name = os.path.relpath(p, root)
            with open(p, "rb") as f:
                first = f.readline().decode("utf-8", "replace").strip()
            check(os.access(p, os.X_OK), "%s is executable" % name, "mode %o" % os.stat(p).st_mode)
            is_py = first == "#!/usr/bin/python3"
            check(is_py or first in ("#!/usr/bin/env bash", "#!/bin/bash", "#!/bin/sh"),
                  "%s starts with #!/usr/bin/python3 or a shell" % name, first)
            if is_py:
                r = subprocess.run([p, "--help"], env=env, capture_output=True, text=True, timeout=120)
                check(r.returncode == 0 and r.stdout.strip(), "%s --help runs with /usr/bin/python3" % name,
                      r.stderr)

        try:
            import onnx  # noqa: F401
            have_onnx = True
        except ImportError:
            have_onnx = False
            print("note: the onnx package is missing: the import example is not run")
        sandbox = os.path.join(tmp, "clone")
        os.makedirs(os.path.join(sandbox, "build", "cli"))
        for d in ("models", "scripts", "traces", "docs"):
            os.symlink(os.path.join(root, d), os.path.join(sandbox, d))
        os.symlink(qsim, os.path.join(sandbox, "build", "cli", "qsim"))
        cmds = readme_commands(root)
        check(len(cmds) >= 8, "the README shows qsim commands (%d found)" % len(cmds))
        skipped_outputs = set()
        for words in cmds:
            line = " ".join(words)
            if not have_onnx and (words[1:2] == ["import"] or skipped_outputs & set(words)):
                skipped_outputs.update(w for w in words if w.endswith(".qbin"))
                print("skip %s" % line)
                continue
            r = subprocess.run(words, cwd=sandbox, env=env, capture_output=True, text=True, timeout=600)
            check(r.returncode == 0, "README: %s" % line, r.stderr)

        if have_onnx:
            out = os.path.join(tmp, "example_qdq.onnx")
            r = subprocess.run([os.path.join(root, "scripts", "make_onnx_example.py"), "-o", out], env=env,
                               capture_output=True, text=True)
            same = r.returncode == 0 and open(out, "rb").read() == open(
                os.path.join(root, "models", "onnx", "example_qdq.onnx"), "rb").read()
            check(same, "models/onnx/example_qdq.onnx is scripts/make_onnx_example.py's output", r.stderr)
    print("%d failed" % len(FAILS))
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
