"""The control plane: store-driven scheduler and controllers, pure reconcile functions plus a driver.

See netsim.controlplane.loop for how to drive it and netsim.store for the source of truth.
"""
