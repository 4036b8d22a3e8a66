package lockcheck
