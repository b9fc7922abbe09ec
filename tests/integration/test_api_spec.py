"""test_api_spec - docs/api/openapi.yaml describes exactly the routes mailwarden-api serves,
with the same role (x-role), as printed by `mailwarden-api --routes`."""

import os
import shutil
import subprocess
import unittest

import yaml  # Debian python3-yaml (scripts/setup)

import mailwarden_lab as lab_mod

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SPEC = os.path.join(TOP, 'docs', 'api', 'openapi.yaml')
METHODS = {'get', 'put', 'post', 'delete', 'patch', 'options', 'head'}


def spec_routes():
    """spec_routes - {(METHOD, path): role} from the OpenAPI file."""
    with open(SPEC) as f:
        doc = yaml.safe_load(f)
    out = {}
    for path, item in doc['paths'].items():
        for method, op in item.items():
            if method in METHODS:
                out[(method.upper(), path)] = op.get('x-role')
    return out


def binary_routes():
    """binary_routes - {(METHOD, path): role} from mailwarden-api --routes."""
    binary = os.path.join(lab_mod.DEFAULT_BUILDDIR, 'webapi', 'mailwarden-api')
    p = subprocess.run([binary, '--routes'], capture_output=True, text=True, check=True)
    out = {}
    for line in p.stdout.splitlines():
        method, path, role = line.split()
        out[(method, path)] = role
    return out


class ApiSpecTest(unittest.TestCase):
    def test_spec_and_route_table_agree(self):
        spec, built = spec_routes(), binary_routes()
        self.assertGreater(len(built), 10)
        self.assertEqual(sorted(set(built) - set(spec)), [], 'routes missing from the spec')
        self.assertEqual(sorted(set(spec) - set(built)), [], 'spec routes the API lacks')
        self.assertEqual(spec, built, 'x-role differs from the route table')

    def test_spec_is_valid_yaml_with_openapi_header(self):
        with open(SPEC) as f:
            doc = yaml.safe_load(f)
        self.assertTrue(str(doc['openapi']).startswith('3.'))
        for (method, path), role in spec_routes().items():
            self.assertIn(role, ('none', 'user', 'self', 'admin'), (method, path))


if __name__ == '__main__':
    unittest.main()


SAMPLE = os.path.join(TOP, 'conf.d', 'nginx-mailwarden.conf.sample')
SAMPLE_PASS = 'fastcgi_pass unix:/run/mailwarden-api/api.sock;'


class NginxSampleTest(unittest.TestCase):
    def nginx_t(self, server_text, http_extra=''):
        """nginx_t - nginx -t of a configuration whose one server block holds SERVER_TEXT
        (HTTP_EXTRA at http level before it): asserts it is accepted."""
        root = lab_mod.make_root('mwapi-nginx-')
        try:
            port = lab_mod.free_port()
            conf = os.path.join(root, 'nginx.conf')
            inc = os.path.join(root, 'server.conf')
            lab_mod.write_file(inc, server_text)
            lab_mod.write_file(conf, (
                'pid %s/nginx.pid;\nerror_log %s/error.log;\nevents {}\nhttp {\n'
                '  access_log off;\n  client_body_temp_path %s;\n  fastcgi_temp_path %s;\n'
                '%s  server {\n    listen 127.0.0.1:%d;\n    include %s;\n  }\n}\n'
                % (root, root, root, root, http_extra, port, inc)))
            nginx = lab_mod.find_binary('nginx', 'nginx')
            p = subprocess.run([nginx, '-t', '-p', root, '-c', conf, '-e',
                                os.path.join(root, 'error.log')],
                               capture_output=True, text=True)
            self.assertEqual(p.returncode, 0, p.stderr)
        finally:
            shutil.rmtree(root, ignore_errors=True)

    def test_nginx_sample_is_accepted_by_nginx(self):
        """conf.d/nginx-mailwarden.conf.sample included in a server block passes nginx -t."""
        with open(SAMPLE) as f:
            self.nginx_t(f.read())

    def test_nginx_sample_keepalive_recipe(self):
        """The sample's keep-alive comment, applied to the sample as it says (its upstream
        line at http level, its fastcgi_pass line in place of every unix one), passes
        nginx -t; the admin guide gives the same recipe."""
        with open(SAMPLE) as f:
            text = f.read()
        comment = [l[1:].strip() for l in text.splitlines() if l.startswith('#   ')]
        upstream = [l for l in comment if l.startswith('upstream mailwarden_api ')]
        kept_pass = [l for l in comment if l.startswith('fastcgi_pass mailwarden_api;')]
        self.assertEqual(len(upstream), 1, comment)
        self.assertEqual(len(kept_pass), 1, comment)
        self.assertIn('keepalive', upstream[0])
        self.assertIn('fastcgi_keep_conn on;', kept_pass[0])
        self.assertIn(SAMPLE_PASS, comment)
        active = ''.join(l for l in text.splitlines(True) if not l.lstrip().startswith('#'))
        self.assertGreaterEqual(active.count(SAMPLE_PASS), 6)
        kept = active.replace(SAMPLE_PASS, kept_pass[0])
        self.assertNotIn('unix:/run/mailwarden-api/', kept)
        self.nginx_t(kept, '  %s\n' % upstream[0])
        with open(os.path.join(TOP, 'docs', 'admin-guide.md')) as f:
            guide = ' '.join(f.read().split())
        self.assertIn('`fastcgi_keep_conn on`', guide)
        self.assertIn('upstream mailwarden_api { server unix:/run/mailwarden-api/api.sock; '
                      'keepalive 8; keepalive_requests 1000000; }', guide)
