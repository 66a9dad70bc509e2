# cargo_package_version(<Cargo.toml> <out-var>)
#
# Sets <out-var> to the `version = "..."` of the [package] table, so the C
# tests can compare rlm_rust_version() with what Cargo builds. Fails the
# configure step when there is none (a workspace-inherited version is not
# supported: the root package states its own).
function(cargo_package_version toml out_var)
  file(STRINGS "${toml}" lines)
  set(in_package FALSE)
  foreach(line IN LISTS lines)
    if(line MATCHES "^[ \t]*\\[([^]]+)\\]")
      if(CMAKE_MATCH_1 STREQUAL "package")
        set(in_package TRUE)
      else()
        set(in_package FALSE)
      endif()
    elseif(in_package AND line MATCHES "^[ \t]*version[ \t]*=[ \t]*\"([^\"]+)\"")
      set(${out_var} "${CMAKE_MATCH_1}" PARENT_SCOPE)
      return()
    endif()
  endforeach()
  message(FATAL_ERROR "${toml}: no version = \"...\" in [package]")
endfunction()
