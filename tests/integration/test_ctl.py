"""mailwardenctl against a real SQLite store: exit codes, messages, refusals, audit log.

These drive the built binary as a shell script would; no service is needed.
"""
import json
import os
import re
import shutil
import sqlite3
import stat
import subprocess
import tempfile
import unittest

BUILDDIR = os.environ.get("MW_BUILDDIR", os.path.join(os.path.dirname(__file__), "..", "..", "build"))
CTL = os.path.join(BUILDDIR, "ctl", "mailwardenctl")
SRCDIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


class CtlStore:
    """A throwaway config + store + master key for one test class."""

    def __init__(self):
        if not os.access(CTL, os.X_OK):
            raise RuntimeError(f"{CTL} not built: run make first")
        self.dir = tempfile.mkdtemp(prefix="mw-ctl-")
        self.db = os.path.join(self.dir, "store", "mailwarden.db")
        self.key = os.path.join(self.dir, "etc", "master.key")
        os.makedirs(os.path.join(self.dir, "etc"))
        self.conf = os.path.join(self.dir, "etc", "mailwarden.conf")
        with open(self.conf, "w") as f:
            f.write(f"store = sqlite:{self.db}\nmaster_key = {self.key}\nlog = stderr\n"
                    "[password]\nargon2_memory = 8M\nargon2_passes = 1\nmin_length = 10\n")

    def run(self, *args, stdin=None):
        p = subprocess.run([CTL, "-c", self.conf, *args], input=stdin, capture_output=True,
                           text=True, timeout=60)
        return p.returncode, p.stdout, p.stderr

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


class TestCtl(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.s = CtlStore()
        rc, out, err = cls.s.run("init")
        if rc != 0:
            raise RuntimeError(f"init failed: {err}")

    @classmethod
    def tearDownClass(cls):
        cls.s.cleanup()

    def ok(self, *args, stdin=None):
        rc, out, err = self.s.run(*args, stdin=stdin)
        self.assertEqual(rc, 0, f"{args}: rc={rc} stderr={err}")
        return out, err

    def fails(self, code, *args, stdin=None, message=None):
        rc, out, err = self.s.run(*args, stdin=stdin)
        self.assertEqual(rc, code, f"{args}: expected exit {code}, got {rc}: {err}")
        if message is not None:
            self.assertIn(message, err)
        return err

    def test_init_creates_store_and_key_and_is_idempotent(self):
        st = os.stat(self.s.key)
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
        self.assertEqual(st.st_size, 32)
        out, _ = self.ok("init")
        self.assertIn("up to date", out)
        self.assertIn("present", out)

    def test_add_show_list(self):
        out, _ = self.ok("user", "add", "Alice@Example.ORG", "--description", "first user",
                         "--password-stdin", stdin="correct horse battery\n")
        self.assertEqual(out, "")  # nothing on stdout unless --generate
        out, _ = self.ok("user", "show", "alice@example.org", "--json")
        u = json.loads(out)
        self.assertEqual(u["username"], "alice@example.org")
        self.assertEqual(u["status"], "active")
        self.assertEqual(u["role"], "user")
        self.assertEqual(u["description"], "first user")
        self.assertEqual(u["allowed_from"], [])
        self.assertNotIn("password", u)
        out, _ = self.ok("user", "list", "--json")
        self.assertIn("alice@example.org", [x["username"] for x in json.loads(out)])
        # the stored hash is argon2id in Dovecot's form, never the password
        with sqlite3.connect(self.s.db) as c:
            (pw,) = c.execute("SELECT password FROM users WHERE username='alice@example.org'").fetchone()
        self.assertTrue(pw.startswith("{ARGON2ID}$argon2id$"), pw)
        self.assertNotIn("correct horse", pw)

    def test_password_stdin_is_the_only_non_tty_source(self):
        # no tty, no --password-stdin: refused with a message saying what to do
        p = subprocess.run([CTL, "-c", self.s.conf, "user", "add", "bob@example.org"],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           start_new_session=True, timeout=30)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("--password-stdin", p.stderr)
        self.fails(3, "user", "show", "bob@example.org")

    def test_generate_prints_password_once(self):
        out, _ = self.ok("user", "add", "gen@example.org", "--generate")
        pw = out.strip()
        self.assertGreaterEqual(len(pw), 20)
        self.assertEqual(out.count("\n"), 1)

    def test_duplicate_and_missing(self):
        self.ok("user", "add", "dup@example.org", "--password-stdin", stdin="0123456789ab\n")
        self.fails(4, "user", "add", "DUP@example.org", "--password-stdin",
                   stdin="0123456789ab\n", message="already exists")
        self.fails(3, "user", "show", "nobody@example.org", message="not found")
        self.fails(3, "user", "disable", "nobody@example.org")
        self.fails(3, "user", "passwd", "nobody@example.org", "--password-stdin", stdin="0123456789ab\n")
        self.fails(3, "user", "del", "nobody@example.org", "--yes")

    def test_bad_input_refused_clearly(self):
        self.fails(2, "user", "add", "short@example.org", "--password-stdin", stdin="short\n",
                   message="password refused")
        self.fails(2, "user", "add", "has space@example.org", "--password-stdin",
                   stdin="0123456789ab\n", message="invalid username")
        self.fails(2, "user", "add", "x@example.org", "--role", "root", "--password-stdin",
                   stdin="0123456789ab\n", message="--role")
        self.fails(2, "user", "add", "x@example.org", "--bogus", message="--bogus")
        self.fails(2, "user", "add", message="missing")
        self.fails(2, "user", "frobnicate", "x", message="unknown command")
        self.fails(2, "user", message="missing subcommand")
        self.fails(2, "user", "del", "x@example.org", message="--yes")
        self.fails(2, "user", "add", "x@example.org", "--password-stdin", "--generate")
        self.fails(2, "user", "add", "x@example.org", "--password-stdin", stdin="",
                   message="no password")
        self.fails(2, "user", "add", "x@example.org", "--password-stdin",
                   stdin="a" * 5000 + "\n", message="longer than")
        self.fails(3, "user", "show", "x@example.org")  # none of the above created it

    def test_sql_metacharacters_stored_verbatim(self):
        name = "o'brien\"--;drop@example.org"
        rc, _, err = self.s.run("user", "add", name, "--password-stdin", stdin="0123456789ab\n")
        # the username grammar refuses quotes (they would break Dovecot's %u quoting)
        self.assertEqual(rc, 2, err)
        desc = "x'); DROP TABLE users; --"
        self.ok("user", "add", "meta@example.org", "--description", desc, "--password-stdin",
                stdin="0123456789ab\n")
        out, _ = self.ok("user", "show", "meta@example.org", "--json")
        self.assertEqual(json.loads(out)["description"], desc)

    def test_disable_enable_passwd_del(self):
        self.ok("user", "add", "carol@example.org", "--password-stdin", stdin="first password 1\n")
        self.ok("user", "disable", "carol@example.org")
        out, _ = self.ok("user", "show", "carol@example.org", "--json")
        self.assertEqual(json.loads(out)["status"], "disabled")
        self.ok("user", "enable", "carol@example.org")
        with sqlite3.connect(self.s.db) as c:
            (before,) = c.execute("SELECT password FROM users WHERE username='carol@example.org'").fetchone()
        self.ok("user", "passwd", "carol@example.org", "--password-stdin", stdin="second password 2\n")
        with sqlite3.connect(self.s.db) as c:
            (after,) = c.execute("SELECT password FROM users WHERE username='carol@example.org'").fetchone()
        self.assertNotEqual(before, after)
        self.ok("allow-from", "add", "carol@example.org", "carol@example.org")
        self.ok("user", "del", "carol@example.org", "--yes")
        self.fails(3, "user", "show", "carol@example.org")
        with sqlite3.connect(self.s.db) as c:
            (n,) = c.execute("SELECT count(*) FROM allowed_from WHERE pattern='carol@example.org'").fetchone()
        self.assertEqual(n, 0)

    def test_allow_from(self):
        self.ok("user", "add", "dave@example.org", "--password-stdin", stdin="0123456789ab\n")
        self.ok("allow-from", "add", "dave@example.org", "Dave@Example.org", "dave+*@example.org",
                "*@*.example.org", "*@bücher.example")
        out, _ = self.ok("allow-from", "list", "dave@example.org")
        self.assertEqual(sorted(out.split()), sorted([
            "dave@example.org", "dave+*@example.org", "*@*.example.org", "*@xn--bcher-kva.example"]))
        self.fails(4, "allow-from", "add", "dave@example.org", "dave@example.org")
        # one bad pattern: nothing is added
        err = self.fails(2, "allow-from", "add", "dave@example.org", "new@example.org", "j*@example.org")
        self.assertIn("j*@example.org", err)
        out, _ = self.ok("allow-from", "list", "dave@example.org")
        self.assertNotIn("new@example.org", out)
        self.ok("allow-from", "del", "dave@example.org", "dave+*@example.org")
        self.fails(3, "allow-from", "del", "dave@example.org", "dave+*@example.org")
        self.fails(3, "allow-from", "list", "ghost@example.org")
        self.fails(3, "allow-from", "add", "ghost@example.org", "ghost@example.org")

    def test_audit_log_records_changes(self):
        self.ok("user", "add", "erin@example.org", "--password-stdin", stdin="0123456789ab\n")
        self.ok("user", "disable", "erin@example.org")
        with sqlite3.connect(self.s.db) as c:
            rows = c.execute("SELECT actor, action, target, client, details FROM audit_log "
                             "WHERE target='erin@example.org' ORDER BY id").fetchall()
        # the API's words and JSON details for the same changes (lib/mw-audit.def, issue 11):
        # disabling is the API's PATCH {"status": "disabled"}, user.update
        self.assertEqual([r[1] for r in rows], ["user.add", "user.update"])
        self.assertEqual([json.loads(r[4]) for r in rows],
                         [{"generated_password": False, "role": "user", "status": "active"},
                          {"status": "disabled"}])
        self.assertTrue(all(r[0].startswith("cli:") and r[3] == "local" for r in rows), rows)

    def test_config_check_names_file_and_line(self):
        bad = os.path.join(self.s.dir, "bad.conf")
        with open(bad, "w") as f:
            f.write("# comment\nlog = stderr\nlog_level = loud\n")
        rc, out, err = self.s.run("config", "check", bad)
        self.assertEqual(rc, 1)
        self.assertIn(f"{bad}:3", err)
        self.assertIn("log_level", err)
        rc, out, err = self.s.run("config", "check")
        self.assertEqual(rc, 0, err)
        # a command other than config check refuses to run on a bad config
        p = subprocess.run([CTL, "-c", bad, "user", "list"], capture_output=True, text=True)
        self.assertEqual(p.returncode, 1)
        self.assertIn(f"{bad}:3", p.stderr)

    def test_sample_config_is_valid(self):
        sample = os.path.join(os.path.dirname(__file__), "..", "..", "conf.d", "mailwarden.conf.sample")
        rc, out, err = self.s.run("config", "check", sample)
        self.assertEqual(rc, 0, err)

    def test_config_dump_shows_effective_values(self):
        out, _ = self.ok("config", "dump", "--origin")
        self.assertIn(f"store = sqlite:{self.s.db}", out)
        self.assertIn("argon2_passes = 1", out)
        self.assertIn(f"{self.s.conf}:", out)  # origin of a set key
        self.assertIn("default", out)           # origin of an unset one

    def test_help(self):
        p = subprocess.run([CTL, "--help"], capture_output=True, text=True)
        self.assertEqual(p.returncode, 0)
        for word in ("user add", "allow-from add", "config check", "EXIT STATUS", "--password-stdin"):
            self.assertIn(word, p.stdout)
        out, _ = self.ok("user", "add", "--help")
        self.assertIn("usage: mailwardenctl user add", out)

    def test_man_page_describes_every_command(self):
        """docs/man/mailwardenctl.8 names every command of the one table (ctl-commands.def)."""
        p = subprocess.run([CTL, "--help"], capture_output=True, text=True)
        commands = p.stdout.split("\nCOMMANDS\n")[1].split("\nGLOBAL OPTIONS")[0]
        names = set()
        for line in commands.splitlines():
            if line.startswith("  ") and not line.startswith("   "):
                words = line.split()
                top = words[0] in ("init", "classify", "dns", "doctor")
                names.add(" ".join(words[:1] if top else words[:2]))
        self.assertGreaterEqual(len(names), 30, names)
        with open(os.path.join(SRCDIR, "docs", "man", "mailwardenctl.8")) as f:
            man = f.read().replace("\\-", "-")
        for name in sorted(names):
            self.assertIn(name, man, name + " is not in mailwardenctl.8")

    def test_admin_guide_lists_every_audit_action(self):
        """The admin guide's table is `audit actions --markdown` (lib/mw-audit.def)."""
        out, _ = self.ok("audit", "actions", "--markdown")
        with open(os.path.join(SRCDIR, "docs", "admin-guide.md")) as f:
            guide = f.read()
        start = guide.index("<!-- audit actions:")
        start = guide.index("\n", start) + 1
        self.assertEqual(guide[start:guide.index("<!-- end of audit actions -->")], out)
        self.assertIn("| `user.delete` |", out)
        self.assertIn("user.del", out)  # the older name is documented

    def test_audit_actions_come_from_the_table(self):
        """Every action the API or mailwardenctl writes is named through the enum of
        lib/mw-audit.def (MW_AUDIT_..., mw_audit_name), never as a string literal."""
        with open(os.path.join(SRCDIR, "lib", "mw-audit.def")) as f:
            ids = set(re.findall(r'^MW_AUDIT\((\w+), "', f.read(), re.M))
        self.assertIn("USER_DELETE", ids)
        seen = 0
        for d in ("webapi", "ctl"):
            for fn in sorted(os.listdir(os.path.join(SRCDIR, d))):
                if not fn.endswith(".c"):
                    continue
                with open(os.path.join(SRCDIR, d, fn)) as f:
                    src = f.read()
                for m in re.finditer(r'\bMW_AUDIT_(\w+)', src):
                    if m.group(1) in ("COUNT", "FIELD_MAX"):  # not actions
                        continue
                    seen += 1
                    self.assertIn(m.group(1), ids, "%s/%s: %s" % (d, fn, m.group(0)))
                self.assertNotRegex(src, r'(api_audit|new_session)\((?:[^;"]*?)"[a-z_.]+"', fn)
                self.assertNotRegex(src, r'ctl_audit\(ctl, "', fn)
        self.assertGreater(seen, 20)

    def test_store_newer_than_code_refused(self):
        d = CtlStore()
        try:
            self.assertEqual(d.run("init")[0], 0)
            with sqlite3.connect(d.db) as c:
                c.execute("UPDATE schema_version SET version = version + 100")
            rc, _, err = d.run("user", "list")
            self.assertEqual(rc, 1)
            self.assertIn("newer", err)
        finally:
            d.cleanup()

    def test_master_key_readable_by_others_refused(self):
        d = CtlStore()
        try:
            self.assertEqual(d.run("init")[0], 0)
            os.chmod(d.key, 0o644)
            rc, _, err = d.run("init")
            self.assertEqual(rc, 1)
            self.assertIn("master key", err)
        finally:
            d.cleanup()


if __name__ == "__main__":
    unittest.main()
