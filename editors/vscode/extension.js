// The netc extension: the `netc` language (grammar and editing rules in package.json) and the
// language server, `netc lsp`, started over stdio with vscode-languageclient.
"use strict";

const vscode = require("vscode");
const { LanguageClient, TransportKind } = require("vscode-languageclient/node");

/** @type {LanguageClient | undefined} */
let client;

function activate(context) {
  const config = vscode.workspace.getConfiguration("netc");
  const command = config.get("server.path", "netc");
  const serverOptions = {
    run: { command, args: ["lsp"], transport: TransportKind.stdio },
    debug: { command, args: ["lsp"], transport: TransportKind.stdio },
  };
  const clientOptions = {
    documentSelector: [{ language: "netc" }],
    initializationOptions: {
      scope: config.get("scope", "directory"),
      debounceMs: config.get("debounceMs", 25),
    },
    synchronize: {
      // Other .np files of a directory compile with the open ones: tell the server when they change.
      fileEvents: vscode.workspace.createFileSystemWatcher("**/*.np"),
    },
  };
  client = new LanguageClient("netc", "netc", serverOptions, clientOptions);
  return client.start().catch((err) => {
    vscode.window.showErrorMessage(
      `netc: cannot start \`${command} lsp\` (${err.message}). Install netc or set netc.server.path.`
    );
  });
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
