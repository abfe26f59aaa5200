#!lua flags=no-writes
-- page.lua: read status indexes merged into one list, newest first, a page at a
-- time. Order: score (ms the job entered its status) descending, then id
-- descending (bytewise), so equal scores have a stable order. Read-only.
-- KEYS[1..n] status indexes (any queues, any statuses): ZSETs, or completed LISTs
--   of 22-byte (ms, id) elements newest first (ms never decrease from tail to
--   head; see pack_completed in _lib.lua), decoded here: replies are all text
-- ARGV[1] job key prefix ("job:")   ARGV[2] limit (jobs to return)
-- ARGV[3] cursor score ('' = from the newest)   ARGV[4] cursor id: the page starts
--   strictly after the entry (score, id), which need not exist any more
-- ARGV[5] task filter ('' = any)   ARGV[6] budget: most index entries examined
-- ARGV[7] "1": return each job's fields; "0": ids only
-- ARGV[8] one character per key of KEYS: "z" a ZSET, "l" a completed LIST
-- ARGV[9] job fields to leave out of each job's fields, comma-separated ('' = none):
--   large ones (payload, result) a page does not show are not even sent
-- Entries whose job hash is gone are skipped. The walk stops after `limit` jobs
-- or `budget` examined entries, whichever comes first.
-- Work per request: per ZSET, two ZCOUNTs and a binary search among equal scores
-- (ZREVRANGE, O(log n) each); per LIST, a galloping then binary search over
-- LINDEX for the cursor's ms (O(log p) LINDEXes, each O(p / ~150) quicklist nodes
-- for a cursor at position p: cheap near the head), then reads of `chunk`
-- elements. A LIST's run of equal ms is read and sorted whole (its order in the
-- list is LPUSH order, not id order): as many jobs as completed in one ms.
-- Returns: {next score or '', next id or '', {id, score, {field, value, ...}, ...}}:
-- the position to continue from ('' when nothing is left) and the jobs.
local prefix, limit = ARGV[1], tonumber(ARGV[2])
local cursor_score, cursor_id = ARGV[3], ARGV[4]
local task, budget, with_fields = ARGV[5], tonumber(ARGV[6]), ARGV[7] == '1'
local kinds = ARGV[8]
local leave_out = {}
for name in string.gmatch(ARGV[9] or '', '[^,]+') do leave_out[name] = true end
local leaving = next(leave_out) ~= nil
local cursor_ms = tonumber(cursor_score)

-- Bytewise a < b, as Redis orders equal scores (Lua's < follows the locale).
local function less(a, b)
  for i = 1, math.min(#a, #b) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end

local chunk = math.min(math.max(limit + 1, 16), 256)

-- ZSET: rank (in descending order) of the first entry after the cursor: those
-- with a higher score come before; among equal scores (descending ids) a binary
-- search finds the first id below the cursor's.
local function zset_start(key)
  if cursor_score == '' then return 0 end
  local lo = redis.call('ZCOUNT', key, '(' .. cursor_score, '+inf')
  local hi = lo + redis.call('ZCOUNT', key, cursor_score, cursor_score)
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    local id = redis.call('ZREVRANGE', key, mid, mid)[1]
    if less(id, cursor_id) then hi = mid else lo = mid + 1 end
  end
  return lo
end

local function zset_fill(h)
  h.buf = redis.call('ZREVRANGE', h.key, h.pos, h.pos + chunk - 1, 'WITHSCORES')
  h.pos = h.pos + chunk
  h.at = 1
  if #h.buf < 2 * chunk then h.done = true end
end

-- LIST: the ms of an element (entry_ms), and the index of the first element
-- whose ms <= the cursor's (the run of the cursor's ms starts there): probe
-- 0, 1, 3, 7, ... from the head, then a binary search in the last gap.
local function at_or_below(key, i)
  local e = redis.call('LINDEX', key, i)
  return not e or entry_ms(e) <= cursor_ms
end

local function list_start(key)
  if cursor_score == '' then return 0 end
  local lo, probe = 0, 0
  while not at_or_below(key, probe) do
    lo = probe + 1
    probe = 2 * probe + 1
  end
  local hi = probe
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if at_or_below(key, mid) then hi = mid else lo = mid + 1 end
  end
  return lo
end

-- Reads the next whole runs of equal ms (a run cut by the chunk's end is left for
-- the next read, unless the chunk is all one run: then it reads on to its end),
-- keeps the entries after the cursor, and sorts them by ms, then id, descending.
local function list_fill(h)
  local raw = redis.call('LRANGE', h.key, h.pos, h.pos + chunk - 1)
  local n = #raw
  if n < chunk then
    h.done = true
  else
    local last = entry_ms(raw[n])
    local keep = n
    while keep > 0 and entry_ms(raw[keep]) == last do keep = keep - 1 end
    if keep > 0 then
      n = keep
    else
      while true do
        local more = redis.call('LRANGE', h.key, h.pos + n, h.pos + n + chunk - 1)
        local other = false
        for _, e in ipairs(more) do
          if entry_ms(e) ~= last then other = true; break end
          n = n + 1
          raw[n] = e
        end
        if other then break end
        if #more < chunk then h.done = true; break end
      end
    end
  end
  h.pos = h.pos + n
  local entries = {}
  for i = 1, n do
    local ms, id = unpack_completed(raw[i])
    if not cursor_ms or ms < cursor_ms or (ms == cursor_ms and less(id, cursor_id)) then
      entries[#entries + 1] = {id, ms}
    end
  end
  table.sort(entries, function(a, b)
    if a[2] ~= b[2] then return a[2] > b[2] end
    return less(b[1], a[1])
  end)
  h.buf = {}
  for _, x in ipairs(entries) do
    h.buf[#h.buf + 1] = x[1]
    h.buf[#h.buf + 1] = x[2]
  end
  h.at = 1
end

local heads = {}
for i, key in ipairs(KEYS) do
  if string.sub(kinds, i, i) == 'l' then
    heads[i] = {key = key, pos = list_start(key), fill = list_fill, buf = {}, at = 1}
  else
    heads[i] = {key = key, pos = zset_start(key), fill = zset_fill, buf = {}, at = 1}
  end
  heads[i].done = false
end

-- The next entry of one index, without taking it: id, score (or nil when exhausted).
local function peek(h)
  while h.at > #h.buf do
    if h.done then return nil end
    h.fill(h)
  end
  return h.buf[h.at], tonumber(h.buf[h.at + 1])
end

local jobs, found, examined = {}, 0, 0
local last_score, last_id = '', ''
while true do
  local best, best_id, best_score = nil, nil, nil
  for _, h in ipairs(heads) do
    local id, score = peek(h)
    if id and (not best or score > best_score or (score == best_score and less(best_id, id))) then
      best, best_id, best_score = h, id, score
    end
  end
  if not best then
    last_score, last_id = '', ''  -- nothing left
    break
  end
  if found >= limit or examined >= budget then break end
  best.at = best.at + 2
  examined = examined + 1
  last_score, last_id = string.format('%.0f', best_score), best_id
  local key = prefix .. best_id
  local ok
  if task ~= '' then
    ok = redis.call('HGET', key, 'task') == task
  else
    ok = with_fields or redis.call('EXISTS', key) == 1
  end
  if ok then
    local fields = {}
    if with_fields then
      fields = redis.call('HGETALL', key)
      if leaving then
        local kept = {}
        for i = 1, #fields, 2 do
          if not leave_out[fields[i]] then
            kept[#kept + 1] = fields[i]; kept[#kept + 1] = fields[i + 1]
          end
        end
        fields = kept
      end
    end
    if #fields > 0 or not with_fields then
      jobs[#jobs + 1] = best_id
      jobs[#jobs + 1] = last_score
      jobs[#jobs + 1] = fields
      found = found + 1
    end
  end
end
return {last_score, last_id, jobs}
