//! Vision: the TFLite runtime, face detection, alignment, embedding, and the gallery match.
