-- missing_from.lua - authenticated mail without From: (or with two) is refused at end of
-- message with 550 5.6.0; inbound forged headers are deleted by index.
dofile(dir .. "/common.lua")

function main()
	local conn = open()
	user_mail(conn)
	expect(SMFIR_CONTINUE, "Subject", mt.header, conn, "Subject", "no From")
	expect(SMFIR_CONTINUE, "eoh", mt.eoh, conn)
	expect(SMFIR_REPLYCODE, "eom", mt.eom, conn)
	check(mt.eom_check(conn, MT_SMTPREPLY, "550", "5.6.0", "message has no From: header"),
	      "missing From: not refused with 550 5.6.0")

	user_mail(conn)
	expect(SMFIR_CONTINUE, "From", mt.header, conn, "From", user)
	expect(SMFIR_CONTINUE, "From 2", mt.header, conn, "from", user)
	expect(SMFIR_CONTINUE, "eoh", mt.eoh, conn)
	expect(SMFIR_REPLYCODE, "eom", mt.eom, conn)
	check(mt.eom_check(conn, MT_SMTPREPLY, "550", "5.6.0", "message has 2 From: headers"),
	      "two From: headers not refused")

	-- a user name the store does not know
	outbound_mail(conn, "nobody-here@example.org", "<nobody-here@example.org>",
		      SMFIR_REPLYCODE)

	-- inbound: our headers deleted, someone else's Authentication-Results kept
	inbound_mail(conn, "<x@example.net>")
	expect(SMFIR_CONTINUE, "rcpt", mt.rcptto, conn, "<a@example.net>")
	expect(SMFIR_CONTINUE, "h1", mt.header, conn, "X-Mailwarden-Spam", "no")
	expect(SMFIR_CONTINUE, "h2", mt.header, conn, "Authentication-Results", "other.example; spf=pass")
	expect(SMFIR_CONTINUE, "h3", mt.header, conn, "Authentication-Results",
	       "mail.example.org; spf=pass")
	expect(SMFIR_CONTINUE, "h4", mt.header, conn, "X-Mailwarden-Spam", "no")
	expect(SMFIR_CONTINUE, "From", mt.header, conn, "From", "x@example.net")
	expect(SMFIR_CONTINUE, "eoh", mt.eoh, conn)
	expect(SMFIR_CONTINUE, "eom", mt.eom, conn)
	check(mt.eom_check(conn, MT_HDRDELETE, "X-Mailwarden-Spam"), "X-Mailwarden-Spam kept")
	check(mt.eom_check(conn, MT_HDRDELETE, "Authentication-Results"), "our A-R kept")
	mt.disconnect(conn)
end

run(main)
