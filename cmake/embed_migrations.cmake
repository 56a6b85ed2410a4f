# Turns storage/migrations/NNNN_name.sql into a C++ table so the daemon
# carries its schema inside the binary. Run by a custom command at build time:
#   cmake -DSRC_DIR=... -DOUT=... -P embed_migrations.cmake
file(GLOB files RELATIVE ${SRC_DIR} ${SRC_DIR}/*.sql)
list(SORT files)
set(body "")
foreach(f IN LISTS files)
  if(NOT f MATCHES "^([0-9][0-9][0-9][0-9])_([a-z0-9_]+)\\.sql$")
    message(FATAL_ERROR "migration file name must be NNNN_name.sql: ${f}")
  endif()
  math(EXPR version "${CMAKE_MATCH_1}")
  set(name ${CMAKE_MATCH_2})
  file(READ ${SRC_DIR}/${f} sql)
  if(sql MATCHES "\\)IBLSQL\"")
    message(FATAL_ERROR "${f} contains the raw-string delimiter )IBLSQL\"")
  endif()
  string(APPEND body "    {${version}, \"${name}\", R\"IBLSQL(${sql})IBLSQL\"},\n")
endforeach()
file(WRITE ${OUT}.tmp
"// Generated from storage/migrations/*.sql by cmake/embed_migrations.cmake. Do not edit.
#include \"storage/migrations.hpp\"

namespace iblsync::storage {
namespace {
const Migration kMigrations[] = {
${body}};
}  // namespace

std::span<const Migration> KnownMigrations() { return kMigrations; }
}  // namespace iblsync::storage
")
execute_process(COMMAND ${CMAKE_COMMAND} -E copy_if_different ${OUT}.tmp ${OUT})
