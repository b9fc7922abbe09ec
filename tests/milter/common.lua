-- common.lua - helpers shared by the mailwarden-milter miltertest scripts.
-- Globals set by the runner (tests/integration/test_milter_protocol.py) with -D:
--   socket  the milter's socket (inet:PORT@127.0.0.1)
--   user    an active user allowed only their own address (user)
-- A script defines main() and ends with run(main): miltertest swallows Lua errors, so run()
-- wraps main in pcall and prints "RESULT ok" or "RESULT fail: <why>" (the runner checks).

function check(cond, what)
	if not cond then
		error(what, 2)
	end
end

-- expect - call f(conn, ...) and check the milter's reply is want
function expect(want, what, f, conn, ...)
	local err = f(conn, ...)
	check(err == nil, what .. ": call failed: " .. tostring(err))
	local got = mt.getreply(conn)
	check(got == want, string.format("%s: reply %q, want %q", what, tostring(got), tostring(want)))
end

-- open - a connection past connect and HELO (the connect callback must be negotiated)
function open()
	local conn = mt.connect(socket, 20, 0.25)
	check(conn ~= nil, "mt.connect failed")
	-- a loopback client: inside the default trusted_networks, so inbound messages here get
	-- no SPF/DKIM/DMARC lookups (those are tested through Postfix with a lab DNS server)
	expect(SMFIR_CONTINUE, "conninfo", mt.conninfo, conn, "localhost", "127.0.0.1")
	-- an explicit HELO: libmilter clears later-stage macros when HELO arrives, so the
	-- implicit one miltertest sends just before MAIL would wipe the MAIL macros
	expect(SMFIR_CONTINUE, "helo", mt.helo, conn, "client.example.net")
	return conn
end

-- outbound_mail - MAIL FROM as authenticated USER_NAME
function outbound_mail(conn, user_name, envfrom, want)
	mt.macro(conn, SMFIC_MAIL, "{auth_authen}", user_name, "i", "QID1")
	expect(want or SMFIR_CONTINUE, "mailfrom " .. envfrom, mt.mailfrom, conn, envfrom)
end

-- user_mail - MAIL FROM <user> as the authenticated user, RCPT TO <a@example.net>
function user_mail(conn)
	outbound_mail(conn, user, "<" .. user .. ">")
	expect(SMFIR_CONTINUE, "rcpt", mt.rcptto, conn, "<a@example.net>")
end

function inbound_mail(conn, envfrom)
	mt.macro(conn, SMFIC_MAIL, "{auth_authen}", "", "i", "QID2")
	expect(SMFIR_CONTINUE, "mailfrom " .. envfrom, mt.mailfrom, conn, envfrom)
end

function run(f)
	local ok, err = pcall(f)
	if ok then
		print("RESULT ok")
	else
		print("RESULT fail: " .. tostring(err))
	end
end
