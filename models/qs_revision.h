/* The exact source revision qsim was built from: `git describe --always
 * --dirty --tags` of the source tree at build time, or the release version
 * when built from a tarball (cmake/qsim_revision.cmake). Reports and
 * `qsim --version` carry it so that a result names the code that made it. */
#ifndef QS_REVISION_H
#define QS_REVISION_H

extern const char qs_source_revision[];

#endif
