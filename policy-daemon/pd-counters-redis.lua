-- pd-counters-redis.lua - batches of GCRA limits, each evaluated and (with commit) charged
-- atomically.
--
-- Run by pd-counters-redis.c with EVALSHA; the build embeds this file into the C code as a
-- string (policy-daemon/pd-counters-redis-lua.h), so this is the only copy.
--
-- One call carries one or more batches (the daemon groups the batches of the policy requests
-- that arrive together, to save Redis a command per request); they are run one after the
-- other, each exactly as if it were a call of its own, and the whole call is atomic.
--
-- KEYS         the counter keys of every batch in order, already prefixed ("mw:rl:...")
-- ARGV         per batch: now, microseconds, from the caller's clock (never Redis TIME: tests
--              fix the clock, and every policyd host must keep its clock synchronised); "1" to
--              charge when every limit of the batch allows, "0" to evaluate only, "L" for a
--              lease batch (below); the number n of its keys; and per key: window W
--              (microseconds), limit N > 0, cost c >= 0 (a lease batch: W, N, want_min,
--              want_max, ret, ret_end)
--
-- A lease batch (pd-counters-lease.c) treats each key on its own: first it takes back ret
-- unused units of the host's previous lease, crediting only the part of that lease's
-- reservation that still lies in the future (at most ret * T and at most ret_end - now:
-- time that has passed is never given back, so a return never makes room that an exact
-- counter would not have); then it grants g units, charged like a cost of g:
--   avail = floor((now + N * T - max(tat, now)) / T)
--   g = clamp(floor(avail / 4), want_min, want_max), 0 when want_min > avail
-- (a quarter of what is left: slices shrink as the key nears its limit). It returns
-- {1, 1, g_1, base_1, tat_1, ...}: base is max(tat, now) before the grant, tat the TAT after.
--
-- Arithmetic, exactly as pd_gcra() in pd-counters.c (contract in pd-counters.h):
--   T = ceil(W / N), at least 1;  new_tat = max(tat, now) + c * T;  allowed <=> new_tat - now <= N * T
-- A key holds its TAT as a decimal integer and expires (PX) one grace second after the TAT is
-- reached (Redis expires by its own clock; the grace keeps a host whose clock is a little
-- behind from seeing a key vanish that it still counts), so an absent key is a TAT of 0.
-- Every number stays below 2^53 and is exact in Lua's doubles.
--
-- Returns, per batch in order, {all_allowed, committed, allowed_1, tat_1, ..., allowed_n,
-- tat_n}: tat_i is the TAT stored before the batch (0 when absent); the caller derives usage
-- and times from it with pd_gcra() itself, so the reported numbers have one implementation.
-- A batch that cannot be evaluated (bad limit, a key that is not a counter or not a string)
-- changes nothing and returns {-1, message} in its place; the other batches are not affected.

local GRACE_MS = 1000

local out = {}
local a = 1 -- next ARGV
local k = 1 -- next key
local nkeys = #KEYS

-- emission_interval: T = ceil(w / lim), at least 1, without trusting the rounding of the
-- division
local function emission_interval(w, lim)
	local t = math.floor(w / lim)
	if t * lim < w then
		t = t + 1
	end
	if t < 1 then
		t = 1
	end
	return t
end

-- run_batch: one batch of n keys starting at KEYS[k0], its numbers at ARGV[a0]; returns its
-- result (nothing is written unless every limit of the batch allows and commit is set)
local function run_batch(now, commit, n, k0, a0)
	local res = {0, 0}
	local new_tats = {}
	local all = true
	for i = 1, n do
		local key = KEYS[k0 + i - 1]
		local w = tonumber(ARGV[a0 + 3 * (i - 1)])
		local lim = tonumber(ARGV[a0 + 3 * (i - 1) + 1])
		local cost = tonumber(ARGV[a0 + 3 * (i - 1) + 2])
		-- the bounds of pd_gcra (pd-counters.h, MW_RATE_COUNT_MAX): inside them every number
		-- here stays exact in doubles
		if w == nil or lim == nil or cost == nil or w <= 0 or lim <= 0 or cost < 0 or
			w > 31622400000000 or lim > 1000000000000000 then
			return {-1, 'mw-gcra: bad limit for ' .. key}
		end
		-- pcall: a key of another type (WRONGTYPE) refuses this batch, not the whole call
		local stored = redis.pcall('GET', key)
		local tat = 0
		if type(stored) == 'table' and stored.err then
			return {-1, 'mw-gcra: ' .. stored.err .. ': ' .. key}
		end
		if stored then
			tat = tonumber(stored)
			if tat == nil then
				return {-1, 'mw-gcra: not a counter: ' .. key}
			end
		end
		local t = emission_interval(w, lim)
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
		res[1 + 2 * i] = ok and 1 or 0
		res[2 + 2 * i] = tat
	end
	if all then
		res[1] = 1
	end
	if commit and all then
		for i = 1, n do
			local ttl = new_tats[i] - now
			if ttl > 0 and new_tats[i] ~= res[2 + 2 * i] then
				-- the key is empty once the TAT is reached: expire it then (plus the grace)
				local ttl_ms = math.floor((ttl + 999) / 1000) + GRACE_MS
				redis.call('SET', KEYS[k0 + i - 1], string.format('%.0f', new_tats[i]),
				           'PX', ttl_ms)
			end
		end
		res[2] = 1
	end
	return res
end

-- read_tat: the TAT stored at key (0 when absent), or nil and a message
local function read_tat(key)
	local stored = redis.pcall('GET', key)
	if type(stored) == 'table' and stored.err then
		return nil, 'mw-gcra: ' .. stored.err .. ': ' .. key
	end
	if not stored then
		return 0
	end
	local tat = tonumber(stored)
	if tat == nil then
		return nil, 'mw-gcra: not a counter: ' .. key
	end
	return tat
end

-- run_lease: one lease batch of n keys (see the header): a return and a grant per key
local function run_lease(now, n, k0, a0)
	local res = {1, 1}
	local plan = {}
	for i = 1, n do
		local key = KEYS[k0 + i - 1]
		local v = {}
		for j = 1, 6 do
			v[j] = tonumber(ARGV[a0 + 6 * (i - 1) + j - 1])
			if v[j] == nil then
				return {-1, 'mw-gcra: bad lease for ' .. key}
			end
		end
		local w, lim, wmin, wmax, ret, rend = v[1], v[2], v[3], v[4], v[5], v[6]
		if w <= 0 or lim <= 0 or wmin < 0 or wmax < wmin or ret < 0 or
			w > 31622400000000 or lim > 1000000000000000 or wmax > lim or ret > lim then
			return {-1, 'mw-gcra: bad lease for ' .. key}
		end
		local tat, err = read_tat(key)
		if tat == nil then
			return {-1, err}
		end
		plan[i] = {key, w, lim, wmin, wmax, ret, rend, tat}
	end
	for i = 1, n do
		local key, w, lim, wmin, wmax, ret, rend, tat = unpack(plan[i])
		local old = tat
		local t = emission_interval(w, lim)
		if ret > 0 and tat > now then
			local credit = ret * t
			if rend - now < credit then
				credit = rend - now
			end
			if credit > 0 then
				tat = tat - credit
			end
		end
		local base = tat
		if base < now then
			base = now
		end
		local avail = math.floor((now + lim * t - base) / t)
		local g = math.floor(avail / 4)
		if g > wmax then
			g = wmax
		end
		if g < wmin then
			g = wmin
		end
		if g > avail then
			g = 0
		end
		local new_tat = base + g * t
		if new_tat ~= old then
			if new_tat > now then
				local ttl_ms = math.floor((new_tat - now + 999) / 1000) + GRACE_MS
				redis.call('SET', key, string.format('%.0f', new_tat), 'PX', ttl_ms)
			else
				redis.call('DEL', key)
			end
		end
		res[#res + 1] = g
		res[#res + 1] = base
		res[#res + 1] = new_tat
	end
	return res
end

while a <= #ARGV do
	local now = tonumber(ARGV[a])
	local commit = ARGV[a + 1] == '1'
	local n = tonumber(ARGV[a + 2])
	if now == nil or n == nil or n < 1 or k + n - 1 > nkeys or a + 2 + 3 * n > #ARGV then
		return redis.error_reply('ERR mw-gcra: bad arguments')
	end
	local lease = ARGV[a + 1] == 'L'
	local per = lease and 6 or 3
	if n == nil or a + 2 + per * n > #ARGV then
		return redis.error_reply('ERR mw-gcra: bad arguments')
	end
	local res
	if lease then
		res = run_lease(now, n, k, a + 3)
	else
		res = run_batch(now, commit, n, k, a + 3)
	end
	for j = 1, #res do
		out[#out + 1] = res[j]
	end
	k = k + n
	a = a + 3 + per * n
end
if k == 1 or k ~= nkeys + 1 then
	return redis.error_reply('ERR mw-gcra: bad arguments')
end
return out
