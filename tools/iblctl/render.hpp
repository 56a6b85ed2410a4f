#pragma once
// Human-readable renderings of control-socket results (iblctl without --json).

#include <string>

namespace iblsync::iblctl {

// Each takes the "result" JSON of its command; unknown shapes fall back to the JSON itself.
std::string RenderStatus(const std::string& result_json);
std::string RenderReload(const std::string& result_json);
std::string RenderHelp(const std::string& result_json);
std::string RenderLibraries(const std::string& result_json);  // library.list
std::string RenderLibrary(const std::string& result_json);    // library.add, .enable, .disable
std::string RenderToken(const std::string& result_json);      // token.issue, .rotate, .revoke
std::string RenderChanges(const std::string& result_json);    // changes: one line per change
std::string RenderSyncStatus(const std::string& result_json); // sync.status: one line per harvest source and per peer
std::string RenderSyncAction(const std::string& result_json); // sync.run, .pause, .resume
std::string RenderVerify(const std::string& result_json);     // sync.verify: totals, then the libraries that differ
std::string RenderOaiCheck(const std::string& result_json);   // oai.check: what the repository offers, its problems
std::string RenderOaiFindings(const std::string& result_json); // the same without how to add it (source add)

std::string RenderIblList(const std::string& result_json);    // ibl.list: one line per request
std::string RenderIblShow(const std::string& result_json);    // ibl.show: each transaction and its messages
std::string RenderIblAction(const std::string& result_json);  // ibl.reroute, ibl.cancel
std::string RenderIblStats(const std::string& result_json);   // ibl.stats: per library, with totals
std::string RenderIblManifest(const std::string& result_json);     // ibl.manifest: per route
std::string RenderIblManifestCsv(const std::string& result_json);  // ibl.manifest --csv
std::string RenderIblInvoice(const std::string& result_json);      // ibl.invoice: a statement per library
std::string RenderIblInvoiceCsv(const std::string& result_json);   // ibl.invoice --csv
std::string RenderIblClosures(const std::string& result_json);     // ibl.close, ibl.reopen, ibl.closures
std::string RenderIblLends(const std::string& result_json);        // ibl.lends

// "3d 04h 05m", "2h 03m 04s", "12s"
std::string FormatDuration(long long seconds);

}  // namespace iblsync::iblctl
