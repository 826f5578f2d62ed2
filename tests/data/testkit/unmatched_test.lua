test("a call with no declared response", function()
  local run = fire("fixtures/bare.json")
  expect(run.jobs[1].outcome).to_be("failed")
end)
