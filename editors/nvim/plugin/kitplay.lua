-- :Kitplay jobs | logs JOB | launch APP [ARGS...] | cancel JOB
if vim.g.loaded_kitplay then
  return
end
vim.g.loaded_kitplay = 1

vim.api.nvim_create_user_command('Kitplay', function(opts)
  require('kitplay').command(opts.fargs)
end, {
  nargs = '+',
  desc = 'kitplay: jobs | logs JOB | launch APP [ARGS...] | cancel JOB',
  complete = function(arglead, cmdline)
    return require('kitplay').complete(arglead, cmdline)
  end,
})
