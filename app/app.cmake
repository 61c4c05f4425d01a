# SPDX-License-Identifier: Apache-2.0
# The app's sources and its built-in model; included by app/CMakeLists.txt and by the
# Twister suite that drives the app (tests/zephyr/shell).

# The model linked into flash: a <name>_blob.c written by `west fqt-import`, e.g.
#   west build -b nucleo_f767zi app -- -DFQT_MODEL=$PWD/build/model/kws_blob.c
# Default: the project's own digits CNN; the sensor demo learns its head from scratch, so
# it gets the same CNN with a fresh head (python -m fqt.vectors --fresh-head).
if(CONFIG_FQT_APP_SENSOR)
  set(fqt_default_model ${CMAKE_CURRENT_LIST_DIR}/model/digits_cnn_fresh_blob.c)
else()
  set(fqt_default_model ${CMAKE_CURRENT_LIST_DIR}/model/digits_cnn_blob.c)
endif()
set(FQT_MODEL ${fqt_default_model} CACHE FILEPATH "fqt model blob C source from west fqt-import")
get_filename_component(fqt_model_file ${FQT_MODEL} NAME_WE)
string(REGEX REPLACE "_blob$" "" fqt_model_name ${fqt_model_file})
get_filename_component(fqt_model_dir ${FQT_MODEL} DIRECTORY)

target_sources(app PRIVATE ${CMAKE_CURRENT_LIST_DIR}/src/main.c ${FQT_MODEL})
target_sources_ifdef(CONFIG_FQT_APP_SENSOR app PRIVATE ${CMAKE_CURRENT_LIST_DIR}/src/sensor.c)
target_include_directories(app PRIVATE ${fqt_model_dir})
# The service glue in the fqt module links the blob by these names.
zephyr_compile_definitions(FQT_BUILTIN_MODEL=${fqt_model_name}_blob
                           FQT_BUILTIN_MODEL_LEN=${fqt_model_name}_blob_len)
