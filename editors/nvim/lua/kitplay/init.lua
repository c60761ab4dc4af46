-- kitplay for Neovim: jobs, live logs, launch and cancel, straight over kitplayd's socket.
--
--   :Kitplay jobs                  a list buffer (R refreshes, <CR> opens the job's log)
--   :Kitplay logs JOB              a buffer that follows the job's log live; after a daemon
--                                  restart it reconnects and resumes from the last byte offset
--   :Kitplay launch APP [ARGS...]  start a launch job (ARGS go to the app)
--   :Kitplay cancel JOB            stop a job (SIGTERM to its process tree, then SIGKILL)
--
-- require('kitplay').setup({ socket = '/path/to/kitplayd.sock', reconnect_ms = 500 })

local rpc = require('kitplay.rpc')

local M = {}

M.config = { socket = nil, reconnect_ms = 500 }

-- Log buffers being followed: bufnr -> state.
M.follows = {}

function M.setup(opts)
  M.config = vim.tbl_extend('force', M.config, opts or {})
end

local function socket()
  return M.config.socket or rpc.socket_path()
end

local function notify(msg, level)
  vim.notify('kitplay: ' .. msg, level or vim.log.levels.INFO)
end

-- One shared connection for calls; each log buffer has a connection of its own.
local shared

local function call(method, params, cb)
  if shared and not shared.closed then
    shared:request(method, params, cb)
    return
  end
  rpc.connect(socket(), {}, function(err, conn)
    if err then
      cb(err)
      return
    end
    shared = conn
    conn:request(method, params, cb)
  end)
end

--- Call and wait (for completion and tests): returns result, err.
function M.call_sync(method, params, timeout_ms)
  local done, res, err = false, nil, nil
  call(method, params, function(e, r)
    done, res, err = true, r, e
  end)
  if not vim.wait(timeout_ms or 10000, function() return done end, 10) then
    return nil, { code = rpc.UNREACHABLE, message = method .. ': no answer from kitplayd in time' }
  end
  return res, err
end

local function scratch(name, filetype)
  local buf = vim.fn.bufnr(name)
  if buf == -1 then
    buf = vim.api.nvim_create_buf(true, true)
    vim.api.nvim_buf_set_name(buf, name)
    vim.api.nvim_buf_set_option(buf, 'buftype', 'nofile')
    vim.api.nvim_buf_set_option(buf, 'bufhidden', 'hide')
    vim.api.nvim_buf_set_option(buf, 'swapfile', false)
    vim.api.nvim_buf_set_option(buf, 'filetype', filetype)
  end
  vim.api.nvim_set_current_buf(buf)
  return buf
end

local function set_lines(buf, first, last, lines)
  vim.api.nvim_buf_set_option(buf, 'modifiable', true)
  vim.api.nvim_buf_set_lines(buf, first, last, false, lines)
  vim.api.nvim_buf_set_option(buf, 'modifiable', false)
end

-- :Kitplay jobs ------------------------------------------------------------------------------

-- The app a job is about: `app`, or the new app's `name` for a create job.
function M.job_app(j)
  local p = type(j.params) == 'table' and j.params or {}
  for _, key in ipairs({ 'app', 'name' }) do
    if type(p[key]) == 'string' then
      return p[key]
    end
  end
  return ''
end

-- A time the daemon sends (seconds since the epoch) as local time.
function M.local_time(t)
  if type(t) ~= 'number' then
    return ''
  end
  return os.date('%Y-%m-%d %H:%M:%S', math.floor(t))
end

local function job_line(j)
  return string.format('%-24s %-18s %-11s %-28s %s', j.id, j.kind, j.status, M.job_app(j),
    M.local_time(j.created_at))
end

function M.refresh_jobs(buf)
  call('jobs.list', { limit = 200 }, function(err, res)
    if not vim.api.nvim_buf_is_valid(buf) then
      return
    end
    if err then
      set_lines(buf, 0, -1, { 'kitplay: ' .. err.message })
      return
    end
    local lines = { string.format('%-24s %-18s %-11s %-28s %s', 'JOB', 'KIND', 'STATUS', 'APP',
      'CREATED') }
    for _, j in ipairs(res.jobs) do
      table.insert(lines, job_line(j))
    end
    set_lines(buf, 0, -1, lines)
    vim.b[buf].kitplay_jobs = #res.jobs
  end)
end

function M.jobs()
  local buf = scratch('kitplay://jobs', 'kitplayjobs')
  vim.b[buf].kitplay_jobs = nil
  local opts = { buffer = buf, silent = true }
  vim.keymap.set('n', 'R', function() M.refresh_jobs(buf) end, opts)
  vim.keymap.set('n', '<CR>', function()
    local id = vim.api.nvim_get_current_line():match('^(%S+)')
    if id and id ~= 'JOB' and id ~= 'kitplay:' then
      M.logs(id)
    end
  end, opts)
  M.refresh_jobs(buf)
  return buf
end

-- :Kitplay logs JOB --------------------------------------------------------------------------

-- Append log text: the buffer's lines joined by "\n" are exactly the log's bytes so far.
-- Base64, for log chunks that are not UTF-8 (the daemon sends those as base64 when asked
-- for encoding 'auto': the buffer gets the log's exact bytes).  vim.base64 is Neovim 0.10+.
local B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'
local b64value = {}
for i = 1, #B64 do
  b64value[B64:byte(i)] = i - 1
end

local function unbase64(text)
  if vim.base64 then
    return vim.base64.decode(text)
  end
  local out, acc, bits = {}, 0, 0
  for i = 1, #text do
    local v = b64value[text:byte(i)]
    if v then -- '=' padding and anything else end no byte
      acc, bits = acc * 64 + v, bits + 6
      if bits >= 8 then
        bits = bits - 8
        local byte = math.floor(acc / 2 ^ bits)
        out[#out + 1] = string.char(byte)
        acc = acc - byte * 2 ^ bits
      end
    end
  end
  return table.concat(out)
end

local function append(buf, text)
  local last = vim.api.nvim_buf_line_count(buf)
  local tail = vim.api.nvim_buf_get_lines(buf, last - 1, last, false)[1] or ''
  local lines = vim.split(text, '\n', { plain = true })
  lines[1] = tail .. lines[1]
  local follow_wins = {}
  for _, win in ipairs(vim.fn.win_findbuf(buf)) do
    if vim.api.nvim_win_get_cursor(win)[1] >= last then
      table.insert(follow_wins, win)
    end
  end
  set_lines(buf, last - 1, last, lines)
  local count = vim.api.nvim_buf_line_count(buf)
  for _, win in ipairs(follow_wins) do
    vim.api.nvim_win_set_cursor(win, { count, 0 })
  end
end

local follow

-- A follow is over when its job ended, or its buffer was closed (callbacks may still come).
local function over(st)
  return st.stopped or st.final or not vim.api.nvim_buf_is_valid(st.buf)
end

local function retry(st)
  if over(st) then
    return
  end
  vim.b[st.buf].kitplay_status = 'reconnecting'
  vim.defer_fn(function() follow(st) end, M.config.reconnect_ms)
end

local function on_notification(st, method, params)
  if over(st) or type(params) ~= 'table' or (st.sub and params.subscription ~= st.sub) then
    return
  end
  if method == 'jobs.output' then
    local data = params.data
    if params.encoding == 'base64' then
      data = unbase64(data)
    end
    if params.offset < st.offset then -- never repeat a byte (a resumed subscription)
      data = data:sub(st.offset - params.offset + 1)
    end
    append(st.buf, data)
    st.offset = params.next_offset
    vim.b[st.buf].kitplay_offset = st.offset
  elseif method == 'jobs.state' then
    local job = params.job
    vim.b[st.buf].kitplay_status = job.status
    if params.final then
      st.final = true
      notify('job ' .. st.job .. ' ' .. job.status)
      if st.conn then
        st.conn:close('the job ended')
      end
    end
  end
end

follow = function(st)
  if over(st) then
    return
  end
  rpc.connect(socket(), {
    on_notification = function(method, params) on_notification(st, method, params) end,
    on_close = function() retry(st) end,
  }, function(err, conn)
    if err then
      if err.data and err.data.reason == rpc.UNTRUSTED then -- not a restart: stop, say why
        st.final = true
        vim.b[st.buf].kitplay_status = 'error'
        notify(err.message, vim.log.levels.ERROR)
        return
      end
      retry(st)
      return
    end
    st.conn, st.sub = conn, nil
    if over(st) then -- the buffer was closed while connecting
      conn:close('the buffer was closed')
      return
    end
    local sub = { job_id = st.job, offset = st.offset, encoding = 'auto' } -- exact bytes
    conn:request('jobs.subscribe', sub, function(e, res)
      if over(st) then
        return
      end
      if e then
        if e.code ~= rpc.UNREACHABLE then -- a real answer (no such job): stop following
          st.final = true
          vim.b[st.buf].kitplay_status = 'error'
          notify(e.message, vim.log.levels.ERROR)
          conn:close('subscribe failed')
        end
        return
      end
      st.sub = res.subscription
      if vim.b[st.buf].kitplay_status == 'reconnecting' then
        st.reconnects = st.reconnects + 1
        vim.b[st.buf].kitplay_reconnects = st.reconnects
      end
      vim.b[st.buf].kitplay_status = 'following'
    end)
  end)
end

function M.logs(job)
  local buf = scratch('kitplay://logs/' .. job, 'kitplaylog')
  local st = M.follows[buf]
  if st and not st.stopped and not st.final then
    return buf -- already following
  end
  set_lines(buf, 0, -1, {})
  st = { job = job, buf = buf, offset = 0, reconnects = 0 }
  M.follows[buf] = st
  vim.b[buf].kitplay_job = job
  vim.b[buf].kitplay_offset = 0
  vim.b[buf].kitplay_reconnects = 0
  vim.b[buf].kitplay_status = 'connecting'
  vim.api.nvim_create_autocmd('BufWipeout', {
    buffer = buf,
    once = true,
    callback = function()
      st.stopped = true
      M.follows[buf] = nil
      if st.conn then
        st.conn:close('the buffer was closed')
      end
    end,
  })
  follow(st)
  return buf
end

-- :Kitplay launch APP / :Kitplay cancel JOB -------------------------------------------------

function M.launch(app, args)
  call('launch', { app = app, args = args or {} }, function(err, res)
    if err then
      notify(err.message, vim.log.levels.ERROR)
      return
    end
    vim.g.kitplay_last_job = res.job.id
    notify('launched ' .. app .. ' as job ' .. res.job.id .. ' (:Kitplay logs ' .. res.job.id
      .. ')')
  end)
end

function M.cancel(job)
  call('jobs.cancel', { job_id = job }, function(err, res)
    if err then
      notify(err.message, vim.log.levels.ERROR)
      return
    end
    notify('job ' .. job .. ' ' .. res.job.status)
  end)
end

-- the :Kitplay command -----------------------------------------------------------------------

local USAGE = 'usage: :Kitplay jobs | logs JOB | launch APP [ARGS...] | cancel JOB'

function M.command(args)
  local sub = args[1]
  if sub == 'jobs' and #args == 1 then
    M.jobs()
  elseif sub == 'logs' and #args == 2 then
    M.logs(args[2])
  elseif sub == 'launch' and #args >= 2 then
    M.launch(args[2], vim.list_slice(args, 3))
  elseif sub == 'cancel' and #args == 2 then
    M.cancel(args[2])
  else
    notify(USAGE, vim.log.levels.ERROR)
  end
end

function M.complete(arglead, cmdline)
  local words = vim.split(cmdline, '%s+', { trimempty = false })
  local candidates = {}
  if #words <= 2 then
    candidates = { 'jobs', 'logs', 'launch', 'cancel' }
  elseif #words == 3 and (words[2] == 'logs' or words[2] == 'cancel') then
    local res = M.call_sync('jobs.list', { limit = 50 }, 1000)
    for _, j in ipairs(res and res.jobs or {}) do
      table.insert(candidates, j.id)
    end
  elseif #words == 3 and words[2] == 'launch' then
    local res = M.call_sync('apps.list', vim.empty_dict(), 1000)
    for _, a in ipairs(res and res.apps or {}) do
      table.insert(candidates, a.name)
    end
  end
  return vim.tbl_filter(function(c) return vim.startswith(c, arglead) end, candidates)
end

return M
