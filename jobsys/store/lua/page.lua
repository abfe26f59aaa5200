#!lua flags=no-writes
-- page.lua: read status indexes merged into one list, newest first, a page at a
-- time. Order: score (ms the job entered its status) descending, then id
-- descending (bytewise), so equal scores have a stable order. Read-only.
-- KEYS[1..n] status index ZSETs (any queues, any statuses)
-- ARGV[1] job key prefix ("job:")   ARGV[2] limit (jobs to return)
-- ARGV[3] cursor score ('' = from the newest)   ARGV[4] cursor id: the page starts
--   strictly after the entry (score, id), which need not exist any more
-- ARGV[5] task filter ('' = any)   ARGV[6] budget: most index entries examined
-- ARGV[7] "1": return each job's fields; "0": ids only
-- Entries whose job hash is gone are skipped. The walk stops after `limit` jobs
-- or `budget` examined entries, whichever comes first.
-- Returns: {next score or '', next id or '', {id, score, {field, value, ...}, ...}}:
-- the position to continue from ('' when nothing is left) and the jobs.
local prefix, limit = ARGV[1], tonumber(ARGV[2])
local cursor_score, cursor_id = ARGV[3], ARGV[4]
local task, budget, with_fields = ARGV[5], tonumber(ARGV[6]), ARGV[7] == '1'

-- Bytewise a < b, as Redis orders equal scores (Lua's < follows the locale).
local function less(a, b)
  for i = 1, math.min(#a, #b) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end

-- Rank (in descending order) of the first entry of `key` after the cursor:
-- those with a higher score come before; among equal scores (descending ids)
-- a binary search finds the first id below the cursor's.
local function start_rank(key)
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

local chunk = math.min(math.max(limit + 1, 16), 256)
local heads = {}
for i, key in ipairs(KEYS) do
  heads[i] = {key = key, pos = start_rank(key), buf = {}, at = 1, done = false}
end

-- The next entry of one index, without taking it: id, score (or nil when exhausted).
local function peek(h)
  if h.at > #h.buf then
    if h.done then return nil end
    h.buf = redis.call('ZREVRANGE', h.key, h.pos, h.pos + chunk - 1, 'WITHSCORES')
    h.pos = h.pos + chunk
    h.at = 1
    if #h.buf < 2 * chunk then h.done = true end
    if #h.buf == 0 then return nil end
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
    if with_fields then fields = redis.call('HGETALL', key) end
    if #fields > 0 or not with_fields then
      jobs[#jobs + 1] = best_id
      jobs[#jobs + 1] = last_score
      jobs[#jobs + 1] = fields
      found = found + 1
    end
  end
end
return {last_score, last_id, jobs}
