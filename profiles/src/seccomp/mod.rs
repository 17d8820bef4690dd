//! seccomp policy language (in progress)
