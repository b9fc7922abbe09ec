-- many_rcpts.lua - a thousand recipients, then an allowed message is accepted.
dofile(dir .. "/common.lua")

function main()
	local conn = open()
	outbound_mail(conn, user, "<" .. user .. ">")
	for i = 1, 1000 do
		expect(SMFIR_CONTINUE, "rcpt " .. i, mt.rcptto, conn,
		       string.format("<r%d@example.net>", i))
	end
	expect(SMFIR_CONTINUE, "From", mt.header, conn, "From", user)
	expect(SMFIR_CONTINUE, "eoh", mt.eoh, conn)
	expect(SMFIR_CONTINUE, "eom", mt.eom, conn)
	mt.disconnect(conn)
end

run(main)
