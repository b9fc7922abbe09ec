#!/usr/bin/env python3
"""run.py - run mailwarden's integration tests (tests/integration/test_*.py) against real services.

Usage: tests/integration/run.py [--builddir DIR] [--keep] [-k PATTERN] [TEST_MODULE...]

Each test module starts its own throwaway Postfix/Dovecot/... instances through
scripts/mailwarden_lab.py (loopback only, under a temp dir, stopped at the end). One line per
test: "PASS name (1.2s)" or "FAIL name (1.2s)" followed by the traceback and the logs of the
running instances. Errors and skips count as failures (this project has no skipped tests).
The last line is "integration: N passed, N failed"; the exit status is 1 when any failed.
Run as root (the instances drop to postfix/dovecot/... users themselves).
"""

import argparse
import os
import sys
import time
import traceback
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(TOP, 'scripts'))
sys.path.insert(0, HERE)

import mailwarden_lab  # noqa: E402


class LineResult(unittest.TestResult):
    """LineResult - one line per test, tracebacks and instance logs for failures."""

    def __init__(self, stream):
        super().__init__()
        self.stream = stream
        self.passed = 0
        self.failed_names = []
        self._t0 = {}

    def _line(self, status, test, detail=None):
        t = time.monotonic() - self._t0.pop(test.id(), time.monotonic())
        self.stream.write('%s %s (%.1fs)\n' % (status, name_of(test), t))
        if detail:
            self.stream.write(detail.rstrip('\n') + '\n')
            logs = mailwarden_lab.active_logs()
            if logs:
                self.stream.write(logs.rstrip('\n') + '\n')
        self.stream.flush()

    def startTest(self, test):
        super().startTest(test)
        self._t0[test.id()] = time.monotonic()

    def addSuccess(self, test):
        super().addSuccess(test)
        self.passed += 1
        self._line('PASS', test)

    def _fail(self, test, err, kind):
        self.failed_names.append(name_of(test))
        self._line('FAIL', test, '%s:\n%s' % (kind, ''.join(traceback.format_exception(*err))))

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._fail(test, err, 'failure')

    def addError(self, test, err):
        super().addError(test, err)
        # errors in setUpClass/tearDownClass arrive as _ErrorHolder: no startTest for them
        self._fail(test, err, 'error')

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self.failed_names.append(name_of(test))
        self._line('FAIL', test, 'skipped (skips count as failures): %s' % reason)

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self._fail(test, err, 'expected failure (not allowed)')

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self.failed_names.append(name_of(test))
        self._line('FAIL', test, 'unexpected success')

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            self._fail(subtest, err, 'subtest failure')


def name_of(test):
    """name_of - "module.Class.method" of TEST (or the description of an error holder)."""
    tid = test.id()
    return tid if tid else str(test)


def filter_suite(suite, pattern):
    """filter_suite - the tests of SUITE whose id contains PATTERN."""
    out = unittest.TestSuite()
    for t in suite:
        if isinstance(t, unittest.TestSuite):
            out.addTests(filter_suite(t, pattern))
        elif pattern in t.id():
            out.addTest(t)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--builddir', default=os.environ.get('MW_BUILDDIR'),
            help='build directory with ctl/mailwardenctl etc. (env MW_BUILDDIR; '
            'default: %s)' % mailwarden_lab.DEFAULT_BUILDDIR)
    ap.add_argument('--keep', action='store_true',
            help='keep the lab directories (MW_LAB_KEEP=1) for inspection')
    ap.add_argument('-k', dest='pattern', help='run only tests whose id contains PATTERN')
    ap.add_argument('modules', nargs='*', help='test modules (default: every test_*.py)')
    args = ap.parse_args()

    if args.builddir:
        os.environ['MW_BUILDDIR'] = os.path.abspath(args.builddir)
        mailwarden_lab.DEFAULT_BUILDDIR = os.environ['MW_BUILDDIR']
    if args.keep:
        os.environ['MW_LAB_KEEP'] = '1'
    loader = unittest.TestLoader()
    if args.modules:
        names = [os.path.splitext(os.path.basename(m))[0] for m in args.modules]
        suite = loader.loadTestsFromNames(names)
    else:
        suite = loader.discover(HERE, pattern='test_*.py', top_level_dir=HERE)
    if args.pattern:
        suite = filter_suite(suite, args.pattern)

    result = LineResult(sys.stdout)
    t0 = time.monotonic()
    suite.run(result)
    nfail = len(result.failed_names)
    # Every lab must stop what it started: a daemon still running under a lab directory
    # of this run is a failure of its own (it would hold ports and files on CI).
    time.sleep(0.5)
    leaked = mailwarden_lab.processes_under(mailwarden_lab.MADE_ROOTS)
    if leaked:
        nfail += 1
        print('FAIL lab processes left running after the tests:')
        for pid, cmd in leaked:
            print('  %d %s' % (pid, cmd[:200]))
    else:
        result.passed += 1
        print('PASS no lab process left running')
    if result.testsRun == 0 and nfail == 0:
        print('integration: no tests found')
        nfail = 1
    print('integration: %d tests in %.0fs' % (result.testsRun + 1, time.monotonic() - t0))
    print('integration: %d passed, %d failed' % (result.passed, nfail))
    return 1 if nfail else 0


if __name__ == '__main__':
    sys.exit(main())
