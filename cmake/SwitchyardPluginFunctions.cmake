# switchyard_add_plugin(NAME SOURCES...): a shared object NAME.so exporting only
# `switchyard_plugin`, compiled against SWITCHYARD_PLUGIN_INCLUDE_DIR.
function(switchyard_add_plugin name)
    add_library(${name} MODULE ${ARGN})
    set_target_properties(${name} PROPERTIES PREFIX "" C_VISIBILITY_PRESET hidden
                                             C_STANDARD 11)
    target_include_directories(${name} PRIVATE "${SWITCHYARD_PLUGIN_INCLUDE_DIR}")
endfunction()
