-- wrk script: the same request again and again, each connection pausing before its next one, so
-- the load is paced at about connections ÷ pause requests per second (wrk's `delay()`; the latency
-- wrk reports leaves the pause out). The references of the paced suite run with it.
--
--   wrk -t2 -c16 -d5s --latency -s benches/wrk-paced.lua http://127.0.0.1:18090/bench/100k.bin -- 5
--
-- Argument after `--`: the pause in milliseconds.

local pause = 0

function init(args)
   pause = tonumber(args[1] or "0")
   if pause > 0 then
      delay = function() return pause end
   end
end
