"""The regression gate: two results directories compared point by point (`ternbench check`)."""
