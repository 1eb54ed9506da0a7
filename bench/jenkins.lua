-- pagure-ci's call, as python-jenkins sends it (POST, empty body). The path (the same
-- commit each time) comes from PCB_BENCH_PATH, set by scripts/bench.
local path = os.getenv("PCB_BENCH_PATH")
request = function()
  return wrk.format("POST", path, {["Content-Length"] = "0"}, nil)
end
