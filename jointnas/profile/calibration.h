// The calibration fit: LatencyTable::Calibration from measured end-to-end runs (the runs
// themselves come from profile/calibrate.h). Torch-free.
#pragma once

#include <array>
#include <vector>

#include "jointnas/profile/latency_table.h"

namespace jointnas::profile {

// Fit of LatencyTable::Calibration from (uncalibrated prediction, kept blocks, measured ms)
// triples, >= 3 runs with positive predictions and measurements. A few end-to-end runs on a
// noisy machine do not pin down three parameters when the block count moves with the prediction,
// so the fit is guarded:
// - it minimises relative error (residuals divided by the measurement);
// - it considers the nested models {scale}, {scale, constant}, {scale, per block} and all three,
//   keeps those with scale > 0 whose calibrated prediction is positive on every run, and picks
//   the one with the smallest leave-one-out relative error (a term fitted to noise predicts the
//   held-out run worse, so it drops out); scale alone always qualifies;
// - a run whose residual exceeds both 10 % and 4x the median residual is set aside as an outlier
//   (a burst of load on the machine) and the fit repeated, at most n/4 runs in all.
LatencyTable::Calibration fit_calibration(const std::vector<std::array<double, 3>>& runs);

}  // namespace jointnas::profile
