-- A JSON-RPC 2.0 connection to kitplayd over Neovim's own libuv pipe (vim.loop), in the LSP
-- base-protocol framing: "Content-Length: N\r\n\r\n" followed by N bytes of UTF-8 JSON.
-- kitplayd serves this framing beside NDJSON on the same socket and answers a connection in
-- the framing its first bytes use (docs/api.md, "The Unix socket").
--
-- Works on Neovim 0.7 (Debian bookworm) and newer: vim.loop pipes and vim.json only.

local uv = vim.loop

local M = {}

-- The client-side error code for a lost or missing daemon (daemon/protocol/errors.py).
M.UNREACHABLE = -32099

--- The daemon's socket, found as kitplayd finds it.
function M.socket_path()
  local env = vim.env.KITPLAY_SOCKET
  if env and env ~= '' then
    return env
  end
  local runtime = vim.env.XDG_RUNTIME_DIR
  if runtime and runtime ~= '' then
    return runtime .. '/kitplay/kitplayd.sock'
  end
  return string.format('/tmp/kitplay-%d/kitplayd.sock', uv.getuid())
end

--- One LSP frame holding `msg`.
function M.frame(msg)
  local body = vim.json.encode(msg)
  return 'Content-Length: ' .. #body .. '\r\n\r\n' .. body
end

--- Split complete frames off the front of `buf`: returns bodies, the rest, and an error.
function M.split(buf)
  local bodies = {}
  while true do
    local hend = buf:find('\r\n\r\n', 1, true)
    if not hend then
      break
    end
    local header = buf:sub(1, hend - 1)
    local len = tonumber(header:lower():match('content%-length:%s*(%d+)'))
    if not len then
      return bodies, '', 'the daemon sent a frame without Content-Length: ' .. header:sub(1, 80)
    end
    local start = hend + 4
    if #buf < start + len - 1 then
      break
    end
    table.insert(bodies, buf:sub(start, start + len - 1))
    buf = buf:sub(start + len)
  end
  return bodies, buf, nil
end

-- `data.reason` of the error for a socket another user may have put in our path.
M.UNTRUSTED = 'untrusted'

local function no_daemon(path, why)
  return { code = M.UNREACHABLE, data = { socket = path },
           message = 'no kitplay daemon is listening on ' .. path .. ' (' .. tostring(why)
             .. '); start it with `kitplayd`' }
end

local function refuse(path, why)
  return { code = M.UNREACHABLE, data = { socket = path, reason = M.UNTRUSTED },
           message = 'refusing to connect to ' .. path .. ': ' .. why .. '. Another user may '
             .. "have put it there to catch kitplay's requests: remove it (as root or that "
             .. 'user), or set XDG_RUNTIME_DIR or the `socket` option to a path of your own' }
end

-- `n` bits of a stat mode from bit `shift` (Lua 5.1 has no bit operators; LuaJIT's `bit` is
-- not everywhere Neovim is).
local function bits(mode, shift, n)
  return math.floor(mode / 2 ^ shift) % 2 ^ n
end

--- nil when `path` can only have been made by this user, else an error object (as `request`'s).
---
--- The Python clients ask the kernel who serves the socket (SO_PEERCRED, in
--- daemon/protocol/paths.py check_peer); Neovim has no API for that, so this checks what
--- `lstat` can tell, by the rules paths.py's ensure_private_dir applies to the socket's
--- directory: a real directory (not a symlink) that is either root's and sticky (/tmp itself,
--- where nobody can replace another's file) or ours and closed to others (0700, as kitplayd
--- leaves it); and the socket itself is a socket that belongs to us. In such a directory
--- nobody else can swap the socket between this check and the connect.
function M.check_socket(path, uid)
  uid = uid or uv.getuid()
  local dir = path:match('^(.*)/') -- plain Lua, no vim.fn: safe in any callback
  dir = (dir == nil and '.') or (dir == '' and '/') or dir
  local st, err = uv.fs_lstat(dir)
  if not st then
    return no_daemon(path, err)
  end
  if st.type ~= 'directory' then
    return refuse(path, 'its directory ' .. dir .. ' is '
      .. (st.type == 'link' and 'a symlink' or 'not a directory'))
  end
  local shared_sticky = st.uid == 0 and bits(st.mode, 9, 1) == 1 -- S_ISVTX: /tmp itself
  if not shared_sticky then
    if st.uid ~= uid then
      return refuse(path, string.format(
        'its directory %s belongs to another user (uid %d), not to you (uid %d)',
        dir, st.uid, uid))
    end
    if bits(st.mode, 0, 6) ~= 0 then
      return refuse(path, string.format('its directory %s is open to others (mode %o, not 700)',
        dir, bits(st.mode, 0, 12)))
    end
  end
  local ss
  ss, err = uv.fs_lstat(path)
  if not ss then
    return no_daemon(path, err)
  end
  if ss.type ~= 'socket' then
    return refuse(path, ss.type == 'link' and 'it is a symlink' or 'it is not a socket')
  end
  if ss.uid ~= uid then
    return refuse(path, string.format('it belongs to another user (uid %d), not to you (uid %d)',
      ss.uid, uid))
  end
  return nil
end

local Conn = {}
Conn.__index = Conn

--- Connect to `path`. `handlers.on_notification(method, params)` and
--- `handlers.on_close(reason)` run on the main loop; `cb(err, conn)` once connected or not,
--- `err` an error object as `request`'s (code M.UNREACHABLE; `data.reason` M.UNTRUSTED for a
--- socket check_socket refused, which is never connected to).
function M.connect(path, handlers, cb)
  local bad = M.check_socket(path)
  if bad then
    vim.schedule(function() cb(bad) end)
    return
  end
  local pipe = uv.new_pipe(false)
  local conn = setmetatable({
    pipe = pipe, path = path, next_id = 0, pending = {}, buf = '', closed = false,
    handlers = handlers or {},
  }, Conn)
  pipe:connect(path, function(err)
    if err then
      pipe:close()
      vim.schedule(function() cb(no_daemon(path, err)) end)
      return
    end
    pipe:read_start(function(rerr, data)
      -- A libuv callback: split frames here, touch Neovim only from vim.schedule.
      if rerr or not data then
        vim.schedule(function() conn:close(rerr or 'the daemon closed the connection') end)
        return
      end
      local bodies, rest, bad = M.split(conn.buf .. data)
      conn.buf = rest
      vim.schedule(function()
        for _, body in ipairs(bodies) do
          conn:_dispatch(body)
        end
        if bad then
          conn:close(bad)
        end
      end)
    end)
    vim.schedule(function() cb(nil, conn) end)
  end)
end

function Conn:_dispatch(body)
  local ok, msg = pcall(vim.json.decode, body)
  if not ok or type(msg) ~= 'table' then
    return
  end
  if msg.method ~= nil and msg.id == nil then
    if self.handlers.on_notification then
      self.handlers.on_notification(msg.method, msg.params)
    end
    return
  end
  local cb = self.pending[msg.id]
  if cb == nil then
    return
  end
  self.pending[msg.id] = nil
  if msg.error ~= nil then
    cb(msg.error, nil)
  else
    cb(nil, msg.result)
  end
end

--- Call `method`; `cb(err, result)` runs on the main loop (err is the JSON-RPC error object).
function Conn:request(method, params, cb)
  if self.closed then
    cb({ code = M.UNREACHABLE, message = 'the connection to kitplayd is closed' })
    return
  end
  self.next_id = self.next_id + 1
  local id = self.next_id
  self.pending[id] = cb
  self.pipe:write(M.frame({
    jsonrpc = '2.0', id = id, method = method, params = params or vim.empty_dict(),
  }))
end

--- Call `method` and wait for its answer (at most `timeout_ms`): returns result, err.
function Conn:request_sync(method, params, timeout_ms)
  local done, err, res = false, nil, nil
  self:request(method, params, function(e, r)
    done, err, res = true, e, r
  end)
  if not vim.wait(timeout_ms or 10000, function() return done end, 10) then
    return nil, { code = M.UNREACHABLE, message = method .. ': no answer from kitplayd in time' }
  end
  return res, err
end

function Conn:close(reason)
  if self.closed then
    return
  end
  self.closed = true
  if not self.pipe:is_closing() then
    self.pipe:close()
  end
  local why = 'lost the connection to kitplayd on ' .. self.path .. ': ' .. tostring(reason)
  local pending = self.pending
  self.pending = {}
  for _, cb in pairs(pending) do
    cb({ code = M.UNREACHABLE, message = why }, nil)
  end
  if self.handlers.on_close then
    self.handlers.on_close(why)
  end
end

return M
