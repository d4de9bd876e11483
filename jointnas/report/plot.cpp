#include "jointnas/report/plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include <fmt/format.h>

#include "jointnas/core/atomic_file.h"
#include "jointnas/core/error.h"

#ifdef JNAS_HAVE_PLPLOT
#include <plplot/plplot.h>
#endif

namespace jointnas::report {

#ifdef JNAS_HAVE_PLPLOT
namespace {

// Palette (colour-blind safe, seaborn "colorblind") and markers (Hershey-free: UTF-8 glyphs that
// DejaVu Sans has), indexed by Series::style.
constexpr int kColours[][3] = {{0, 114, 178}, {230, 159, 0}, {0, 158, 115}, {204, 121, 167}, {86, 180, 233},
                               {213, 94, 0},  {150, 130, 0}, {120, 60, 160}, {80, 80, 80}};
constexpr const char* kMarkers[] = {"●", "■", "▲", "◆", "▼", "✚", "✖", "⬟", "★"};
constexpr int kStyles = 9;

void draw(const Chart& chart, const char* device, const std::string& file) {
  // A log axis only over a decade or more: PLplot labels a log axis at its decades alone.
  Chart c = chart;
  if (c.log_x) {
    double lo = std::numeric_limits<double>::infinity(), hi = 0;
    for (const Series& s : c.series) {
      for (double x : s.x) {
        if (std::isfinite(x) && x > 0) lo = std::min(lo, x), hi = std::max(hi, x);
      }
    }
    c.log_x = hi > 10 * lo;
  }
  double xlo = std::numeric_limits<double>::infinity(), xhi = -xlo, ylo = xlo, yhi = -xlo;
  for (const Series& s : c.series) {
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i]) || (c.log_x && s.x[i] <= 0)) continue;
      const double x = c.log_x ? std::log10(s.x[i]) : s.x[i];
      xlo = std::min(xlo, x), xhi = std::max(xhi, x), ylo = std::min(ylo, s.y[i]), yhi = std::max(yhi, s.y[i]);
    }
  }
  JNAS_CHECK_IO(std::isfinite(xlo), "plot {}: no finite point to draw", c.title);
  const double dx = std::max(xhi - xlo, 0.02), dy = std::max(yhi - ylo, 1e-3 * std::max(1.0, std::abs(yhi)));
  PLINT stream = 0;
  plmkstrm(&stream);
  plsdev(device);
  plsfnam(file.c_str());
  plspage(0, 0, 1100, 760, 0, 0);
  PLINT r[16] = {255, 0}, g[16] = {255, 0}, b[16] = {255, 0};  // 0: background white, 1: black
  for (int i = 0; i < kStyles; ++i) r[2 + i] = kColours[i][0], g[2 + i] = kColours[i][1], b[2 + i] = kColours[i][2];
  r[12] = g[12] = b[12] = 200;  // grid
  plscmap0(r, g, b, 13);
  plinit();
  pladv(0);
  plcol0(1);
  // The legend goes under the plot, in two columns.
  plvpor(0.09, 0.97, 0.44, 0.90);
  plwind(xlo - 0.05 * dx, xhi + 0.05 * dx, ylo - 0.06 * dy, yhi + 0.06 * dy);
  plcol0(12);
  plbox(c.log_x ? "glf" : "g", 0, 0, "g", 0, 0);
  plcol0(1);
  plbox(c.log_x ? "bclnst" : "bcnst", 0, 0, "bcnstv", 0, 0);
  pllab(c.x_label.c_str(), c.y_label.c_str(), "");
  plschr(0, 0.9);
  plmtex("t", c.notes.empty() ? 1.2 : 2.8, 0.0, 0.0, c.title.c_str());
  plschr(0, 0.65);
  for (size_t i = 0; i < c.notes.size() && i < 2; ++i) {
    plmtex("t", 1.6 - 1.2 * static_cast<double>(i), 0.0, 0.0, c.notes[i].c_str());
  }
  plschr(0, 1.0);
  std::vector<PLINT> opts, lcol, lsty, scol, snum;
  std::vector<PLFLT> lwid, sscale;
  std::vector<const char*> text, syms;
  for (const Series& s : c.series) {
    std::vector<PLFLT> x, y;
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i]) || (c.log_x && s.x[i] <= 0)) continue;
      x.push_back(c.log_x ? std::log10(s.x[i]) : s.x[i]);
      y.push_back(s.y[i]);
    }
    const int st = ((s.style % kStyles) + kStyles) % kStyles;
    plcol0(2 + st);
    plwidth(2.0);
    if (s.line && x.size() > 1) plline(static_cast<PLINT>(x.size()), x.data(), y.data());
    if (s.markers && !x.empty()) plstring(static_cast<PLINT>(x.size()), x.data(), y.data(), kMarkers[st]);
    if (s.label.empty()) continue;
    opts.push_back((s.markers ? PL_LEGEND_SYMBOL : 0) | (s.line ? PL_LEGEND_LINE : 0));
    lcol.push_back(2 + st), lsty.push_back(1), lwid.push_back(2.0);
    scol.push_back(2 + st), sscale.push_back(1.0), snum.push_back(1);
    text.push_back(s.label.c_str()), syms.push_back(kMarkers[st]);
  }
  plcol0(1);
  plwidth(1.0);
  if (!text.empty()) {
    PLFLT w = 0, h = 0;
    std::vector<PLINT> tcol(text.size(), 1), zero(text.size(), 0);
    std::vector<PLFLT> fzero(text.size(), 0.0);
    const PLINT rows = static_cast<PLINT>((text.size() + 1) / 2);
    pllegend(&w, &h, PL_LEGEND_BACKGROUND | PL_LEGEND_BOUNDING_BOX, PL_POSITION_BOTTOM | PL_POSITION_OUTSIDE, 0.0, 0.23,
             0.06, 0, 1, 1, rows, 2, static_cast<PLINT>(text.size()), opts.data(), 0.6, 0.65, 1.7, 0.0, tcol.data(),
             text.data(), zero.data(), zero.data(), fzero.data(), fzero.data(), lcol.data(), lsty.data(), lwid.data(),
             scol.data(), sscale.data(), snum.data(), syms.data());
  }
  plend1();
}

}  // namespace

bool plotting_available() { return true; }

void plot_chart(const Chart& c, const std::string& stem) {
  for (const auto& [device, ext] : {std::pair{"pngcairo", ".png"}, std::pair{"svgcairo", ".svg"}}) {
    const std::string tmp = stem + ".drawing" + ext;  // PLplot writes it; then atomically into place
    draw(c, device, tmp);
    copy_file_atomic(tmp, stem + ext);
    std::remove(tmp.c_str());
  }
}

#else

bool plotting_available() { return false; }

void plot_chart(const Chart& c, const std::string& stem) {
  throw IoError(fmt::format("cannot draw {}.png/.svg: this build has no PLplot (apt: libplplot-dev plplot-driver-cairo, "
                            "then reconfigure); the data is in the report's JSON, `jointnas pareto CONFIG --report-only` "
                            "draws the charts on a machine with PLplot",
                            stem));
}

#endif

}  // namespace jointnas::report
