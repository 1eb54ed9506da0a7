-- pagure-ci's call, as python-jenkins sends it (POST, empty body), with a new PR number
-- each time so every request is a distinct build.
local n = 0
request = function()
  n = n + 1
  local path = "/jenkins/job/pagure/buildWithParameters?cause=" .. (n % 1000000 + 1)
    .. "&REPO=https%3A%2F%2Fpagure.io%2Fforks%2Falice%2Fpagure.git&BRANCH=fix-ci&BRANCH_TO=master&token=local-trigger-token"
  return wrk.format("POST", path, {["Content-Length"] = "0"}, nil)
end
