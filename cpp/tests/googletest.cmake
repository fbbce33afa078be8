# GoogleTest for cpp/tests and cpp/tests/components: an installed package (libgtest-dev) when
# CMake finds one, else the sources of Debian's googletest package (`make test-cpp` installs it),
# built here. Defines GTest::gtest and GTest::gtest_main, and includes GoogleTest for
# gtest_discover_tests.
if(NOT TARGET GTest::gtest)
  find_package(GTest QUIET)
  if(NOT GTest_FOUND)
    set(STARS_GTEST_SOURCE_DIR "/usr/src/googletest" CACHE PATH
        "GoogleTest sources (Debian's googletest package), used when no installed GTest is found")
    if(NOT EXISTS "${STARS_GTEST_SOURCE_DIR}/CMakeLists.txt")
      message(FATAL_ERROR "GoogleTest not found: install Debian's googletest package "
                          "(apt-get install googletest) or pass -DSTARS_GTEST_SOURCE_DIR=DIR")
    endif()
    set(INSTALL_GTEST OFF CACHE BOOL "" FORCE)
    set(BUILD_GMOCK OFF CACHE BOOL "" FORCE)
    # Its cmake_minimum_required(3.5) draws a deprecation warning from CMake 4.
    set(CMAKE_POLICY_VERSION_MINIMUM 3.10)
    add_subdirectory("${STARS_GTEST_SOURCE_DIR}" googletest EXCLUDE_FROM_ALL)
    unset(CMAKE_POLICY_VERSION_MINIMUM)
    if(NOT TARGET GTest::gtest)  # GoogleTest 1.10 and older define no namespaced targets
      add_library(GTest::gtest ALIAS gtest)
      add_library(GTest::gtest_main ALIAS gtest_main)
    endif()
  endif()
endif()
include(GoogleTest)
