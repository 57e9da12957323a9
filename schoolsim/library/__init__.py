"""The simulated library: the main catalogue (INNOPAC WebPAC), the Zhuhai ILAS, covers."""
