'use strict';
// The side tools' (conn-memory.js, storm-probe.js) command line: `--name=value` options.

/** the value of --<name>=..., or `fallback` when it is absent */
function arg(name, fallback) {
  const a = process.argv.find((x) => x.startsWith(`--${name}=`));
  return a ? a.slice(name.length + 3) : fallback;
}

module.exports = { arg };
