-- Headless end-to-end run of the plugin against a real kitplayd (driven by
-- tests/test_editor_nvim.py, which owns the daemon and restarts it mid-way):
--
--   nvim --headless --clean --cmd 'set rtp^=editors/nvim' -c 'luafile editors/nvim/test/follow.lua'
--
-- Environment: KITPLAY_SOCKET, KP_APP (an app that prints ticks until the file named by its
-- argument exists), KP_STOP, KP_NEVER (a file that never appears), KP_PHASE (this script writes
-- its progress there), KP_RESULT (JSON written at the end), KP_BYTES (the log buffer's bytes,
-- written at the end). Exit code 0 only when all held.

local kitplay = require('kitplay')

local function write(path, text)
  local f = assert(io.open(path, 'wb'))
  f:write(text)
  f:close()
end

local function wait(what, cond, ms)
  if not vim.wait(ms or 30000, cond, 20) then
    error('timed out waiting for ' .. what, 2)
  end
end

-- Poll a job's status through the plugin's own connection (no nested vim.wait).
local function wait_status(job, status)
  local deadline = vim.loop.hrtime() + 30e9
  while true do
    local res = kitplay.call_sync('jobs.get', { job_id = job })
    if res and res.job.status == status then
      return
    end
    if vim.loop.hrtime() > deadline then
      error('timed out waiting for job ' .. job .. ' to be ' .. status, 2)
    end
    vim.wait(50)
  end
end

local function buf_text(buf)
  return table.concat(vim.api.nvim_buf_get_lines(buf, 0, -1, false), '\n')
end

local function main()
  local app, env = vim.env.KP_APP, vim.env
  assert(vim.fn.exists(':Kitplay') == 2, ':Kitplay is not defined (plugin/ not loaded)')

  -- :Kitplay launch APP ARGS... then :Kitplay logs JOB follows it live.
  vim.cmd('Kitplay launch ' .. app .. ' ' .. env.KP_STOP)
  wait('the launch answer', function() return vim.g.kitplay_last_job ~= nil end)
  local job = vim.g.kitplay_last_job
  vim.cmd('Kitplay logs ' .. job)
  local buf = vim.api.nvim_get_current_buf()
  assert(vim.endswith(vim.api.nvim_buf_get_name(buf), 'kitplay://logs/' .. job))
  wait('three ticks in the log buffer', function()
    return select(2, buf_text(buf):gsub('tick %d+ [^\n]*\n', '')) >= 3
  end)

  -- The test restarts the daemon now; the buffer reconnects and resumes from its offset.
  write(env.KP_PHASE, 'following')
  wait('a reconnect after the daemon restart', function()
    return (vim.b[buf].kitplay_reconnects or 0) >= 1
  end, 60000)
  write(env.KP_PHASE, 'resumed')
  wait('the job to end', function() return vim.b[buf].kitplay_status == 'succeeded' end, 60000)

  -- :Kitplay jobs lists it.
  vim.cmd('Kitplay jobs')
  local jobs_buf = vim.api.nvim_get_current_buf()
  wait('the jobs list', function() return (vim.b[jobs_buf].kitplay_jobs or 0) >= 1 end)
  local jobs_text = buf_text(jobs_buf)

  -- :Kitplay cancel JOB stops a running one.
  vim.cmd('Kitplay launch ' .. app .. ' ' .. env.KP_NEVER)
  wait('the second launch', function() return vim.g.kitplay_last_job ~= job end)
  local job2 = vim.g.kitplay_last_job
  wait_status(job2, 'running')
  vim.cmd('Kitplay cancel ' .. job2)
  wait_status(job2, 'cancelled')

  local log_text, offset = buf_text(buf), vim.b[buf].kitplay_offset
  local reconnects = vim.b[buf].kitplay_reconnects

  -- A log buffer closed while it follows stops quietly (its callbacks may still arrive).
  vim.cmd('Kitplay logs ' .. job)
  local again = vim.api.nvim_get_current_buf()
  vim.cmd('bwipeout! ' .. again)
  vim.wait(300)
  -- A bad subcommand says how to use the command.
  local notify, said = vim.notify, nil
  vim.notify = function(msg, level)
    said = { msg = msg, level = level }
  end
  vim.cmd('Kitplay nonsense')
  vim.notify = notify

  -- Completion through the command line itself (as <Tab> asks for it).
  local complete = vim.fn.getcompletion('Kitplay ', 'cmdline')
  local complete_jobs = vim.fn.getcompletion('Kitplay cancel ', 'cmdline')
  local complete_apps = vim.fn.getcompletion('Kitplay launch t.', 'cmdline')
  write(env.KP_BYTES, log_text) -- the buffer's bytes, exactly (JSON would want UTF-8)
  write(env.KP_RESULT, vim.json.encode({
    job = job, job2 = job2, offset = offset, reconnects = reconnects,
    jobs = jobs_text, complete = complete,
    complete_jobs = complete_jobs, complete_apps = complete_apps, errmsg = vim.v.errmsg,
    usage = said,
  }))
end

local ok, err = xpcall(main, debug.traceback)
if ok then
  vim.cmd('qall!')
else
  io.stderr:write('follow.lua failed: ' .. tostring(err) .. '\n')
  vim.cmd('cquit 1')
end
