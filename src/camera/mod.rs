//! Cameras: where frames come from (v4l2, a command's pipe, files, synthetic), and the latest-frame
//! slot that keeps capture from ever blocking inference.
