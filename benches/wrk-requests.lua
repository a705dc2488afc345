-- wrk script: every request is a link request (`POST /api/download-requests`, JSON) for a
-- distinct valid address, so no mailbox or domain budget is spent twice: thread i sends
-- `bench-<run>-<i>-<n>@d<k>.bench-mail.net`, with n counting that thread's requests and the domain
-- cycling over 256 names.
--
--   wrk -t2 -c16 -d5s --latency -s benches/wrk-requests.lua http://127.0.0.1:18180 -- d1m 2 run1
--
-- Arguments after `--`: the catalog's document id, the number of wrk threads (-t), and a tag
-- that makes this run's addresses differ from earlier runs' against the same docgate. At the end
-- it prints `requests: sent N, status 202 A, other O` (O > 0: some were refused, see the log).

local threads = {}
local counter = 0

function setup(thread)
   thread:set("id", counter)
   counter = counter + 1
   table.insert(threads, thread)
end

local document, tag, id
local sent, accepted, other = 0, 0, 0

function init(args)
   document = args[1] or error("usage: -- <document> <threads> [tag]")
   tag = args[3] or "r"
   id = wrk.thread:get("id")
   wrk.method = "POST"
   wrk.headers["Content-Type"] = "application/json"
end

function request()
   sent = sent + 1
   local body = string.format(
      '{"email":"bench-%s-%d-%d@d%d.bench-mail.net","document":"%s"}',
      tag, id, sent, sent % 256, document)
   return wrk.format("POST", "/api/download-requests", nil, body)
end

function response(status, headers, body)
   if status == 202 then
      accepted = accepted + 1
   else
      other = other + 1
   end
   wrk.thread:set("sent", sent)
   wrk.thread:set("accepted", accepted)
   wrk.thread:set("other", other)
end

function done(summary, latency, requests)
   local s, a, o = 0, 0, 0
   for _, t in ipairs(threads) do
      s = s + (t:get("sent") or 0)
      a = a + (t:get("accepted") or 0)
      o = o + (t:get("other") or 0)
   end
   io.write(string.format("requests: sent %d, status 202 %d, other %d\n", s, a, o))
end
