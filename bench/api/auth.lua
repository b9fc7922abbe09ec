-- auth.lua - wrk script for bench/api/run: every request carries the session token
-- (from the environment, so it is never on a command line).
local token = os.getenv("MW_BENCH_TOKEN")
if token == nil or token == "" then
	error("MW_BENCH_TOKEN is not set")
end
wrk.headers["Authorization"] = "Bearer " .. token
