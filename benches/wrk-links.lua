-- wrk script: every request follows a fresh single-use link from a file (one `/d/<token>` path
-- per line, as benches/mint.py writes them). Thread i of T takes lines i+1, i+1+T, i+1+2T, ...,
-- so no link is used twice. A thread that runs out of links says so at the end and sends its last
-- link again (answered 410, so it shows up as a non-2xx response rather than passing unnoticed).
--
--   wrk -t2 -c16 -d5s --latency -s benches/wrk-links.lua http://127.0.0.1:18080 -- links.txt 2
--
-- Arguments after `--`: the links file, the number of wrk threads (-t) and, optionally, a pause
-- in milliseconds each connection waits before its next request (wrk's `delay()`: the load is then
-- paced at about connections ÷ pause requests per second; the latency wrk reports leaves the pause
-- out).

local threads = {}
local counter = 0

function setup(thread)
   thread:set("id", counter)
   counter = counter + 1
   table.insert(threads, thread)
end

local paths = {}
local next_index = 1
local have = 0
local exhausted = 0

function init(args)
   local file = args[1] or error("usage: -- <links file> <threads>")
   local nthreads = tonumber(args[2] or "1")
   local pause = tonumber(args[3] or "0")
   if pause > 0 then
      delay = function() return pause end
   end
   local id = wrk.thread:get("id")
   local line_no = 0
   for line in io.lines(file) do
      if line_no % nthreads == id and line ~= "" then
         have = have + 1
         paths[have] = line
      end
      line_no = line_no + 1
   end
   wrk.thread:set("have", have)
   wrk.thread:set("used", 0)
   wrk.thread:set("exhausted", 0)
end

function request()
   local path = paths[next_index]
   if path then
      wrk.thread:set("used", next_index)
      next_index = next_index + 1
   else
      exhausted = exhausted + 1
      wrk.thread:set("exhausted", exhausted)
      path = paths[have] or "/d/none"
   end
   return wrk.format("GET", path)
end

function done(summary, latency, requests)
   local used, have_all, exhausted_all = 0, 0, 0
   for _, t in ipairs(threads) do
      used = used + (t:get("used") or 0)
      have_all = have_all + (t:get("have") or 0)
      exhausted_all = exhausted_all + (t:get("exhausted") or 0)
   end
   io.write(string.format("links: used %d of %d, reused %d\n", used, have_all, exhausted_all))
end
