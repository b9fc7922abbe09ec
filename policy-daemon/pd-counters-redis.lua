-- pd-counters-redis.lua - one batch of GCRA limits, evaluated and (with commit) charged atomically.
--
-- Run by pd-counters-redis.c with EVALSHA; the build embeds this file into the C code as a
-- string (policy-daemon/pd-counters-redis-lua.h), so this is the only copy.
--
-- KEYS[i]      the counter keys of the batch, already prefixed ("mw:rl:...")
-- ARGV[1]      now, microseconds, from the caller's clock (never Redis TIME: tests fix the
--              clock, and every policyd host must keep its clock synchronised)
-- ARGV[2]      "1" to charge when every limit allows, "0" to evaluate only
-- ARGV[3i]     window W of KEYS[i], microseconds
-- ARGV[3i+1]   limit N of KEYS[i], > 0
-- ARGV[3i+2]   cost c of KEYS[i], >= 0
--
-- Arithmetic, exactly as pd_gcra() in pd-counters.c (contract in pd-counters.h):
--   T = ceil(W / N), at least 1;  new_tat = max(tat, now) + c * T;  allowed <=> new_tat - now <= N * T
-- A key holds its TAT as a decimal integer and expires (PX) one grace second after the TAT is
-- reached (Redis expires by its own clock; the grace keeps a host whose clock is a little
-- behind from seeing a key vanish that it still counts), so an absent key is a TAT of 0.
-- Every number stays below 2^53 and is exact in Lua's doubles.
--
-- Returns {all_allowed, committed, allowed_1, tat_1, ..., allowed_n, tat_n}: tat_i is the
-- TAT stored before this call (0 when absent); the caller derives usage and times from it
-- with pd_gcra() itself, so the reported numbers have one implementation.

local GRACE_MS = 1000

local now = tonumber(ARGV[1])
local commit = ARGV[2] == '1'
local n = #KEYS
if now == nil or #ARGV ~= 2 + 3 * n then
	return redis.error_reply('ERR mw-gcra: bad arguments')
end

local out = {0, 0}
local new_tats = {}
local all = true
for i = 1, n do
	local w = tonumber(ARGV[3 * i])
	local lim = tonumber(ARGV[3 * i + 1])
	local cost = tonumber(ARGV[3 * i + 2])
	if w == nil or lim == nil or cost == nil or w <= 0 or lim <= 0 or cost < 0 then
		return redis.error_reply('ERR mw-gcra: bad limit for ' .. KEYS[i])
	end
	local stored = redis.call('GET', KEYS[i])
	local tat = 0
	if stored then
		tat = tonumber(stored)
		if tat == nil then
			return redis.error_reply('ERR mw-gcra: not a counter: ' .. KEYS[i])
		end
	end
	-- ceil(w / lim) without trusting the rounding of the division
	local t = math.floor(w / lim)
	if t * lim < w then
		t = t + 1
	end
	if t < 1 then
		t = 1
	end
	local base = tat
	if base < now then
		base = now
	end
	local new_tat = base + cost * t
	local ok = new_tat - now <= lim * t
	if not ok then
		all = false
	end
	new_tats[i] = new_tat
	out[1 + 2 * i] = ok and 1 or 0
	out[2 + 2 * i] = tat
end

if all then
	out[1] = 1
end
if commit and all then
	for i = 1, n do
		local ttl = new_tats[i] - now
		if ttl > 0 and new_tats[i] ~= out[2 + 2 * i] then
			-- the key is empty once the TAT is reached: expire it then (plus the grace)
			local ttl_ms = math.floor((ttl + 999) / 1000) + GRACE_MS
			redis.call('SET', KEYS[i], string.format('%.0f', new_tats[i]), 'PX', ttl_ms)
		end
	end
	out[2] = 1
end
return out
