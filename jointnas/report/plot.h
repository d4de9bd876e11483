// Charts for the reports, drawn with PLplot (Debian: libplplot-dev, plplot-driver-cairo): one
// call writes STEM.png and STEM.svg, each atomically. Builds without PLplot (the GPU machine has
// none) still compile: plotting_available() is false there and plot_chart() throws an IoError
// that says how to draw the charts elsewhere (`jointnas pareto --report-only`). Torch-free.
#pragma once

#include <string>
#include <vector>

namespace jointnas::report {

struct Series {
  std::string label;
  std::vector<double> x, y;  // points, drawn in this order
  bool line = true;          // join the points
  bool markers = true;       // draw a marker at each point
  int style = 0;             // colour and marker: series with the same style look the same
  // An unlabelled series has no legend entry (a front drawn under its labelled points).
};

struct Chart {
  std::string title, x_label, y_label;
  bool log_x = true;
  std::vector<Series> series;
  std::vector<std::string> notes;  // lines under the title
};

bool plotting_available();
void plot_chart(const Chart& chart, const std::string& stem);

}  // namespace jointnas::report
