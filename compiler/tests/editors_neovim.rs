//! A real editor on `netc lsp`: headless Neovim (Debian's `neovim`, 0.7 in CI; installed by
//! `.ci/install-deps`) with its built-in client started as docs/editors.md says
//! (`vim.lsp.start_client`), driven by a Lua script. It opens a file with an error and reads the
//! diagnostic, jumps to a definition, renames, and formats, each through the same `vim.lsp.buf`
//! functions a person's key mappings call. The script writes what it saw, one line per step, and
//! the test asserts on that. Skips (with the reason) where `nvim` is missing.
//!
//! To add a step: append it to `SCRIPT` (write a `step(...)` line), then assert on it below.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SCRIPT: &str = r#"
local out = assert(io.open(os.getenv("NETC_OUT"), "w"))
local function step(name, value) out:write(name .. "\t" .. value:gsub("\n", "\\n") .. "\n"); out:flush() end
local ok, err = pcall(function()
  vim.cmd("edit " .. vim.fn.fnameescape(os.getenv("NETC_FILE")))
  local buf = vim.api.nvim_get_current_buf()
  local client_id = vim.lsp.start_client({
    name = "netc",
    cmd = { os.getenv("NETC_BIN"), "lsp" },
    root_dir = vim.fn.fnamemodify(os.getenv("NETC_FILE"), ":p:h"),
  })
  assert(client_id, "the client starts")
  vim.lsp.buf_attach_client(buf, client_id)

  -- 1. The diagnostic of the error in the file.
  assert(vim.wait(20000, function() return #vim.diagnostic.get(buf) > 0 end, 20), "no diagnostics came")
  for _, d in ipairs(vim.diagnostic.get(buf)) do
    step("diagnostic", string.format("%d:%d %s %s", d.lnum + 1, d.col + 1, d.code or "?", d.message:match("[^\n]*")))
  end

  -- 2. Go to definition: from the use of `api` on line 5 to its declaration on line 2.
  vim.api.nvim_win_set_cursor(0, { 5, 19 })
  vim.lsp.buf.definition()
  assert(vim.wait(10000, function() return vim.api.nvim_win_get_cursor(0)[1] ~= 5 end, 20), "the cursor did not move")
  local pos = vim.api.nvim_win_get_cursor(0)
  step("definition", string.format("%d:%d", pos[1], pos[2] + 1))

  -- 3. Rename `api` (cursor on its declaration) to `orders-api`, in the buffer.
  vim.lsp.buf.rename("orders-api")
  assert(vim.wait(10000, function()
    return table.concat(vim.api.nvim_buf_get_lines(buf, 0, -1, false), "\n"):find("orders%-api:8080") ~= nil
  end, 20), "the rename did not arrive")
  step("renamed", table.concat(vim.api.nvim_buf_get_lines(buf, 0, -1, false), "\n"))

  -- 4. Fix the error by hand, wait for the diagnostics to clear, then format.
  vim.api.nvim_buf_set_lines(buf, 5, 6, false, { "web   ->   10.0.0.0/8:443" })
  assert(vim.wait(20000, function()
    for _, d in ipairs(vim.diagnostic.get(buf)) do if d.code == "E0202" then return false end end
    return true
  end, 20), "E0202 stayed after the fix")
  if vim.lsp.buf.format then vim.lsp.buf.format({ timeout_ms = 10000 }) else vim.lsp.buf.formatting_sync(nil, 10000) end
  step("formatted", table.concat(vim.api.nvim_buf_get_lines(buf, 0, -1, false), "\n"))
end)
if not ok then step("error", tostring(err)) end
out:close()
vim.cmd("qa!")
"#;

/// The file the editor opens: an E0202 on line 6, a declaration to jump to and rename, and a
/// layout `netc fmt` changes.
const FILE: &str = "\
namespace shop {
  workload api = {app=api}
  api egress guarded
  api -> dns
  frontend   ->   api:8080
web -> 10.0.0.1/8:443
}
";

fn nvim_found() -> bool {
    Command::new("nvim")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn neovim_shows_the_diagnostic_jumps_to_the_definition_renames_and_formats() {
    if !nvim_found() {
        eprintln!("skipped: `nvim` is not installed (.ci/install-deps installs Debian's neovim)");
        return;
    }
    let dir = tempfile::tempdir().expect("scratch directory");
    let file = dir.path().join("shop.np");
    std::fs::write(&file, FILE).expect("write");
    let script = dir.path().join("drive.lua");
    std::fs::write(&script, SCRIPT).expect("write");
    let out = dir.path().join("out.tsv");
    let mut child = Command::new("nvim")
        .args(["--headless", "-u", "NONE", "-i", "NONE", "--noplugin", "-n", "-c"])
        .arg(format!("luafile {}", script.display()))
        .env("NETC_BIN", env!("CARGO_BIN_EXE_netc"))
        .env("NETC_FILE", &file)
        .env("NETC_OUT", &out)
        .env("XDG_STATE_HOME", dir.path())
        .env("XDG_DATA_HOME", dir.path())
        .env("XDG_CONFIG_HOME", dir.path())
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("nvim starts");
    // Bounded: the script's own waits add up to about a minute at worst.
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    let seen = std::fs::read_to_string(&out).unwrap_or_default();
    assert!(status.is_some(), "nvim did not finish in time; it saw:\n{seen}\nstderr: {stderr}");
    let steps: Vec<(&str, String)> =
        seen.lines().filter_map(|l| l.split_once('\t')).map(|(k, v)| (k, v.replace("\\n", "\n"))).collect();
    assert!(!steps.iter().any(|(k, _)| *k == "error"), "the script failed: {seen}\nstderr: {stderr}");
    let get = |name: &str| -> Vec<&str> {
        steps.iter().filter(|(k, _)| *k == name).map(|(_, v)| v.as_str()).collect()
    };

    assert_eq!(get("diagnostic"), ["6:8 E0202 `10.0.0.1/8` has bits set after its prefix"], "{seen}");
    assert_eq!(get("definition"), ["2:12"], "{seen}");
    assert_eq!(
        get("renamed"),
        [
            "namespace shop {\n  workload orders-api = {app=api}\n  orders-api egress guarded\n  orders-api -> dns\n  frontend   ->   orders-api:8080\nweb -> 10.0.0.1/8:443\n}"
        ],
        "{seen}"
    );
    let expected = netc::fmt::format(
        "namespace shop {\n  workload orders-api = {app=api}\n  orders-api egress guarded\n  orders-api -> dns\n  frontend   ->   orders-api:8080\nweb   ->   10.0.0.0/8:443\n}\n",
    )
    .expect("parses");
    assert_eq!(get("formatted"), [expected.trim_end()], "{seen}");
    // The file on disk is untouched: edits went to the buffer only.
    assert_eq!(std::fs::read_to_string(&file).expect("read"), FILE);
}
