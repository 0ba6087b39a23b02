// sealprint MSI custom action (deferred, LocalSystem): what wixl cannot write as MSI tables.
// 1. %ProgramData%\sealprint gets an ACL of SYSTEM (S-1-5-18) and Administrators
//    (S-1-5-32-544) only, full control, inherited below; inherited entries removed.
// 2. The sealprint-agent service restarts 10 s after a failure, 3 times (count reset after a
//    day), also when it stops with a non-zero exit code (failureflag): the same plan as
//    `sealprint-agent service install` (agent/src/service.rs FAILURE_PLAN).
// Returns msiDoActionStatusSuccess (1) or msiDoActionStatusFailure (3), which fails the install.
function Harden() {
  var shell = new ActiveXObject("WScript.Shell");
  var sys = shell.ExpandEnvironmentStrings("%SystemRoot%") + "\\System32\\";
  var data = shell.ExpandEnvironmentStrings("%ProgramData%") + "\\sealprint";
  var commands = [
    '"' + sys + 'icacls.exe" "' + data + '" /inheritance:r /grant:r *S-1-5-18:(OI)(CI)F *S-1-5-32-544:(OI)(CI)F',
    '"' + sys + 'sc.exe" failure sealprint-agent reset= 86400 actions= restart/10000/restart/10000/restart/10000',
    '"' + sys + 'sc.exe" failureflag sealprint-agent 1'
  ];
  for (var i = 0; i < commands.length; i++) {
    if (shell.Run(commands[i], 0, true) != 0) {
      return 3;
    }
  }
  return 1;
}
